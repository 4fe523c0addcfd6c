import uuid

from jobsvc import ids
from jobsvc.jobs import id_bounds


def test_uuid7_version_variant_and_time():
    value = ids.uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_sort_in_creation_order():
    made = [ids.new_id("job") for _ in range(5000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_parse_id():
    good = ids.new_id("job")
    assert ids.parse_id(good, "job") == good
    assert ids.parse_id(good.upper().replace("JOB-", "job-"), "job") == good
    for bad in ["", "job-", "job-123", "message-" + good[4:], good + "0", "job_" + good[4:], good.replace("-", "", 1)]:
        assert ids.parse_id(bad, "job") is None, bad


def test_successor_and_predecessor():
    assert ids.successor("job-00000000-0000-0000-0000-0000000000ff", "job") == "job-00000000-0000-0000-0000-000000000100"
    assert ids.predecessor("job-00000000-0000-0000-0000-000000000100", "job") == "job-00000000-0000-0000-0000-0000000000ff"
    assert ids.predecessor("job-00000000-0000-0000-0000-000000000000", "job") is None
    assert ids.successor("job-ffffffff-ffff-ffff-ffff-ffffffffffff", "job") is None


def test_id_bounds_are_exclusive_cursors():
    a, b = ids.new_id("job"), ids.new_id("job")
    low, high = id_bounds("job", a, b)
    assert a < low <= high < b
    assert id_bounds("job", b, a) is None
    assert id_bounds("job", a, a) is None
    assert id_bounds("job", None, None) == ("job-00000000-0000-0000-0000-000000000000", "job-ffffffff-ffff-ffff-ffff-ffffffffffff")
