"""Password hashes made on the control machine: PostgreSQL's SCRAM verifiers and the werkzeug
hashes FAB stores."""

import base64

from cluster import passwords

# A verifier PostgreSQL 15 (Debian 12, the lab's db1) itself stored for the password
# "correct horse battery staple" (CREATE ROLE ... PASSWORD ...; SELECT rolpassword FROM pg_authid).
PG_VERIFIER = (
    "SCRAM-SHA-256$4096:KLnGyMDr6m2OLkLEsg4oqQ==$ha6F7FZkU4AU2oa1QMWJWQL9gW44Nu8Yf+1H2p4BPik="
    ":jXQg/+15jAoGiE8wYtVXDuaXp8uQ/2EWqHeNoDmge14="
)


def test_scram_verifier_round_trip():
    salt = bytes(range(16))
    verifier = passwords.scram_verifier("s3cret", salt=salt)
    assert verifier.startswith("SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$")
    assert passwords.scram_verifier_matches("s3cret", verifier)
    assert not passwords.scram_verifier_matches("s3cret!", verifier)
    assert not passwords.scram_verifier_matches("s3cret", None)
    assert not passwords.scram_verifier_matches("s3cret", "md5abcdef")
    assert passwords.scram_verifier("s3cret") != passwords.scram_verifier("s3cret")  # salted


def test_scram_verifier_agrees_with_postgresql():
    assert passwords.scram_verifier_matches("correct horse battery staple", PG_VERIFIER)
    iterations_salt = PG_VERIFIER.split("$")[1]
    salt = base64.b64decode(iterations_salt.split(":")[1])
    assert passwords.scram_verifier("correct horse battery staple", salt=salt) == PG_VERIFIER
