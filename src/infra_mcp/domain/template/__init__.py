"""CloudFormation templates: the intrinsic-function evaluator and the template-to-desired-state reader."""
