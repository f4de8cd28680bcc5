"""The stored form of the ledger's records does not change with their types.

Planned writes, API calls and replay batches are typed records in memory (:mod:`ledger.writes`,
:mod:`ledger.replay_batches`) and JSON objects in the stored events, as they always were: old
ledgers load, and new events are stored byte for byte as before (the hash chain covers them).
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from ledger import events as ev
from ledger.application import LedgerApp
from ledger.config import AttributeMapping, Direction
from ledger.facts import AccountChange, ApiUsage, CompanyChange, WriteOutcome
from ledger.replay_batches import RecordAnswer, ReplayWrite
from ledger.replay_runs import replay_stream
from ledger.writes import ApiCall, PlannedWrite, RejectedWrite, SkippedWrite
from projections.decoding import fast_decode
from tests.support import FakeClock, new_ledger

#: A ``SyncPlanned`` as the ledger stored it before its writes were typed (a planned write,
#: a skip and a rejection, each in the shape every ledger so far holds).
STORED_SYNC_PLANNED = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:03+00:00"},'
    b'"system":"salesforce","record_id":"001B","company_id":"k0","trigger":"company_created",'
    b'"cause":"cd25049e-03cd-5460-8eca-7e5e16d89de7:1","config_version":1,'
    b'"planned":[{"field":"NumberOfEmployees","type":"int","source_system":"intercom",'
    b'"source_record_id":"c0","source_field":"size","source_value":1,"before":null,'
    b'"mapping":{"intercom":"size","salesforce":"NumberOfEmployees",'
    b'"direction":"intercom_to_salesforce","skip_if_source_empty":false,'
    b'"skip_if_destination_has_value":false},"skip_if_source_empty":false,'
    b'"skip_if_destination_has_value":false,"config_version":1,"company_id":"k0",'
    b'"trigger":"company_created","cause":"cd25049e-03cd-5460-8eca-7e5e16d89de7:1",'
    b'"write_id":"4d2026aa-fefb-5a58-9886-3de9192e8291","value":1}],'
    b'"skipped":[{"field":"Website","type":"url","source_system":"intercom",'
    b'"source_record_id":"c0","source_field":"website","source_value":null,"before":null,'
    b'"mapping":{"intercom":"website","salesforce":"Website","direction":"intercom_to_salesforce",'
    b'"skip_if_source_empty":false,"skip_if_destination_has_value":true},'
    b'"skip_if_source_empty":false,"skip_if_destination_has_value":true,"config_version":1,'
    b'"company_id":"k0","trigger":"company_created",'
    b'"cause":"cd25049e-03cd-5460-8eca-7e5e16d89de7:1","rule":"already_equal","value":null}],'
    b'"rejected":[{"field":"Industry","type":"picklist","source_system":"intercom",'
    b'"source_record_id":"c0","source_field":"industry","source_value":"Space Mining",'
    b'"before":null,"mapping":{"intercom":"industry","salesforce":"Industry",'
    b'"direction":"intercom_to_salesforce","skip_if_source_empty":false,'
    b'"skip_if_destination_has_value":false},"skip_if_source_empty":false,'
    b'"skip_if_destination_has_value":false,"config_version":1,"company_id":"k0",'
    b'"trigger":"company_created","cause":"cd25049e-03cd-5460-8eca-7e5e16d89de7:1",'
    b'"reason":"\'Space Mining\' is not a value of the restricted picklist Industry"}]}'
)
STREAM = UUID("2f0b5a8e-6f9c-5d0e-9d4b-4c1f3f1b2a77")


def test_a_stored_sync_planned_decodes_to_typed_writes_and_encodes_back_unchanged() -> None:
    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    stored = StoredEvent(STREAM, 3, ev.SyncPlanned.TOPIC, STORED_SYNC_PLANNED)
    event = app.mapper.to_domain_event(stored)
    assert isinstance(event, ev.SyncPlanned)

    [write] = event.writes
    assert isinstance(write, PlannedWrite)
    assert (write.write_id, write.field, write.value, write.type) == (
        "4d2026aa-fefb-5a58-9886-3de9192e8291",
        "NumberOfEmployees",
        1,
        "int",
    )
    assert write.mapping == AttributeMapping(
        "size", "NumberOfEmployees", Direction("intercom_to_salesforce")
    )
    assert (write.source_system, write.source_record_id, write.source_field) == (
        "intercom",
        "c0",
        "size",
    )
    assert (write.config_version, write.company_id, write.trigger) == (1, "k0", "company_created")
    [skip] = event.skips
    assert isinstance(skip, SkippedWrite) and (skip.field, skip.rule, skip.value) == (
        "Website",
        "already_equal",
        None,
    )
    assert skip.mapping.skip_if_destination_has_value and skip.skip_if_destination_has_value
    [rejection] = event.rejections
    assert isinstance(rejection, RejectedWrite) and rejection.source_value == "Space Mining"
    assert "restricted picklist" in rejection.reason

    assert app.mapper.to_stored_event(event).state == STORED_SYNC_PLANNED
    fast = fast_decode(Notification(STREAM, 3, ev.SyncPlanned.TOPIC, STORED_SYNC_PLANNED, id=1))
    assert fast == event and fast is not None and fast.writes == [write]
    app.close()


def test_typed_records_give_back_their_stored_objects_key_for_key() -> None:
    stored = json.loads(STORED_SYNC_PLANNED)
    for cls, items in (
        (PlannedWrite, "planned"),
        (SkippedWrite, "skipped"),
        (RejectedWrite, "rejected"),
    ):
        for item in stored[items]:
            again = cls.from_stored(item).stored()
            assert json.dumps(again) == json.dumps(item)  # same keys, same order, same values
    write = {
        "record_id": "001Z",
        "key": "k1",
        "field": "Industry",
        "before": None,
        "value": "Banking",
        "type": "picklist",
        "mapping": "industry → Industry",
    }
    assert json.dumps(ReplayWrite.from_stored(write).stored()) == json.dumps(write)
    answer = {
        "record_id": "001Z",
        "ok": False,
        "code": "X",
        "message": "no",
        "fields": ["Industry"],
        "retryable": True,
    }
    assert json.dumps(RecordAnswer.from_stored(answer).stored()) == json.dumps(answer)


#: Digest of every event the scenario below stores, as the ledger stored them before records
#: were typed and events built from named fields. Only a deliberate change of the stored
#: format may change it (and old ledgers must still load then).
SCENARIO_DIGEST = "f862d8d165c2b84a1fd05a9096f3e452ebd81a7153f896f947073123324e829d"


def test_every_record_shape_is_stored_byte_for_byte_as_before() -> None:
    app = new_ledger(FakeClock())
    acme = {"AccountNumber": "k1", "Name": "Acme", "Website": "a.example"}
    app.ingest([AccountChange("001A", acme, "2026-01-01T00:00:00.000+0000")])
    company = {"name": "Old", "industry": "Space Mining", "size": 10, "website": "c.example"}
    app.ingest([CompanyChange("c1", "k1", company, 100, kind="created")])
    renamed = {**acme, "Name": "Acme Corp"}
    app.ingest([AccountChange("001A", renamed, "2026-01-01T00:01:00.000+0000")])
    pending = app.pending_writes()
    assert len(pending) == 2
    request = {"method": "PATCH", "path": "composite/sobjects", "attempts": 1, "records": 1}
    fields = ("NumberOfEmployees", "Zeta")
    call = ApiCall("salesforce", "update", pending[0].record_id, fields, request)
    app.record_outcomes(
        [
            WriteOutcome(pending[0].write_id, ok=True, before=None, api_call=call),
            WriteOutcome(
                pending[1].write_id,
                ok=False,
                error="busy",
                code="UNABLE_TO_LOCK_ROW",
                retryable=True,
            ),
        ]
    )
    left = [p.write_id for p in app.pending_writes()]
    app.give_up(left, "retries_exhausted", "failed 5 times; not sent again")
    app.ingest([ApiUsage("salesforce", 70, 100_000, 100)])
    app.receive([("n1", CompanyChange("c1", "k1", {"name": "New"}, 200))])
    write = ReplayWrite(
        "001Z", "k1", "Industry", None, "Banking", "picklist", "industry → Industry"
    )
    answer = RecordAnswer("001Z", False, "X", "no", ("Industry",), True)
    app.record_run(
        replay_stream("r1"),
        [
            partial(
                ev.ReplayStarted,
                run_id="r1",
                requested_by="t",
                target_org_id="00D",
                target_instance_url="https://x",
                window_from=None,
                window_until="2026-02-01T00:00:00+00:00",
                until_position=9,
                config=app.config.to_dict(),
                config_source="in force",
                dry_run=False,
                arguments="a",
                batches=1,
                summary={"records": 1, "writes": 1},
            ),
            partial(ev.ReplayBatchPlanned, run_id="r1", batch=1, writes=[write.stored()]),
            partial(
                ev.ReplayBatchApplied,
                run_id="r1",
                batch=1,
                results=[answer.stored()],
                already=["001Y"],
                api_calls=2,
            ),
            partial(ev.ReplayPaused, run_id="r1", reason="busy"),
        ],
    )

    digest = hashlib.sha256()
    topics = []
    for n in app.recorder.select_notifications(start=1, limit=100):
        topics.append(n.topic.removeprefix("syncledger:"))
        digest.update(n.topic.encode() + b"\0" + n.state + b"\0")
    assert [t for t in topics if t != "LedgerAdvanced"] == [
        "ConfigurationApplied",
        "AccountCreated",
        "NotSynced",
        "CompanyCreated",
        "IdentityMapped",
        "SyncPlanned",
        "AccountUpdated",
        "SyncPlanned",
        "WriteApplied",
        "WriteFailed",
        "WriteSkipped",
        "ApiUsageObserved",
        "NotificationReceived",
        "ReplayStarted",
        "ReplayBatchPlanned",
        "ReplayBatchApplied",
        "ReplayPaused",
    ]
    assert digest.hexdigest() == SCENARIO_DIGEST
    applied = app.events_of_type(ev.WriteApplied)[0]
    assert applied.api_call == call.stored() and applied.planned_write == pending[0].write
    app.close()
