"""The operator command that creates and revokes API keys in a deployed table."""
from jobsvc import auth, keys


def test_create_prints_the_key_once_and_stores_only_its_hash(table, capsys):
    assert keys.main(["--table", "JobsTable", "create", "--organization", "acme", "--user", "alice", "--name", "ci"]) == 0
    out = capsys.readouterr().out
    key = out.split("key:")[1].split()[0]
    key_id = out.split("key id:")[1].split()[0]
    assert key.startswith("jsk_") and key_id == auth.hash_key(key)
    assert auth.authenticate(f"Bearer {key}") == auth.Actor("acme", "alice")
    import boto3

    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName="JobsTable")["Items"]  # test-only look
    assert key not in str(items) and key_id in str(items)


def test_revoke_by_key_or_by_id(table, capsys):
    first = auth.create_key("acme", "bob")
    second = auth.create_key("acme", "carol")
    assert keys.main(["--table", "JobsTable", "revoke", "--key", first]) == 0
    assert keys.main(["--table", "JobsTable", "revoke", "--key-id", auth.hash_key(second)]) == 0
    assert auth.authenticate(f"Bearer {first}") is None and auth.authenticate(f"Bearer {second}") is None
    assert keys.main(["--table", "JobsTable", "revoke", "--key", first]) == 1
    assert "no such key" in capsys.readouterr().err
