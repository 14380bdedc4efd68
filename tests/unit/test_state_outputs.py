"""A template's Outputs kept in the state document, under the state's checksum."""

from __future__ import annotations

from infra_mcp.domain.common import sha256_of
from infra_mcp.domain.state import StateFile, StateResource, document_checksum, resources_checksum

VPC = StateResource(id="vpc-1", name="VPC", type="AWS::EC2::VPC")


def test_a_state_without_outputs_keeps_the_document_and_checksum_older_states_have() -> None:
    state = StateFile(project_id="web", serial=1, lineage="l", resources=[VPC])
    document = state.to_document()
    assert "outputs" not in document
    assert state.compute_checksum() == resources_checksum([VPC]) == sha256_of(document["resources"])
    assert document_checksum(document) == state.compute_checksum()


def test_a_state_with_outputs_covers_them_with_its_checksum() -> None:
    state = StateFile(project_id="web", serial=1, lineage="l", resources=[VPC], outputs={"VPC": "vpc-1"})
    state.metadata.checksum = state.compute_checksum()
    assert state.checksum_ok()
    assert document_checksum(state.to_document()) == state.metadata.checksum
    edited = state.model_copy(update={"outputs": {"VPC": "vpc-2"}})
    assert not edited.checksum_ok()


def test_the_next_version_carries_the_outputs_it_is_given() -> None:
    state = StateFile(project_id="web", serial=1, lineage="l", resources=[VPC], outputs={"VPC": "vpc-1"})
    following = state.next_version([VPC], user="alice", description="d", outputs=state.outputs)
    assert following.outputs == {"VPC": "vpc-1"}
    assert following.checksum_ok()
