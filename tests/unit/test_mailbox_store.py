"""The mailbox store: Directory rules, the generated Postfix maps (checked with postmap -q)
and Dovecot passwd-file, all-or-nothing commits, CSV import."""

import base64
import hashlib
import os
import subprocess

import pytest

from mailsetup.imap.mailboxes import model
from mailsetup.imap.mailboxes.importer import CsvImportError, import_csv
from mailsetup.imap.mailboxes.model import Directory, MailboxError
from mailsetup.imap.mailboxes.store import FileStore

MAPS = ("domains", "mailboxes", "aliases", "senders")


def fast_hasher(plaintext):
    """For tests only: unsalted, fast; Dovecot's {SHA512.b64} scheme."""
    return "{SHA512.b64}" + base64.b64encode(hashlib.sha512(plaintext.encode()).digest()).decode()


@pytest.fixture
def store(scratch, tmp_path):
    # Postfix commands wait (0.3 s steps, ~2 s) while main.cf is younger than a couple of seconds;
    # the scratch main.cf was just written, so make it old.
    _age(scratch)
    return FileStore(str(tmp_path / "etc-mailsetup"), postfix_config_dir=scratch.postfix_config_dir,
                     users_group=None)


def _age(scratch):
    main_cf = os.path.join(scratch.postfix_config_dir, "main.cf")
    os.utime(main_cf, (os.stat(main_cf).st_atime - 60, os.stat(main_cf).st_mtime - 60))


def q(store, name, key):
    """postmap -q: what Postfix finds, or None."""
    proc = subprocess.run(["postmap", "-c", store.postfix_config_dir, "-q", key, store.map_spec(name)],
                          capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.strip() if proc.returncode == 0 else None


def files(store):
    """Every file under the root with its content and mtime (to prove nothing changed)."""
    found = {}
    for dirpath, _dirs, names in os.walk(store.root):
        for name in names:
            if name == ".lock":
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                found[path] = (f.read(), os.stat(path).st_mtime_ns)
    return found


def populated(store):
    with store.transaction() as d:
        d.add_domain("example.org")
        d.add_domain("Example.NET.")
        d.add_mailbox("alice@example.org", fast_hasher("alice-password"), model.quota("2G"))
        d.add_mailbox("Bob@Example.org", fast_hasher("bob-password"))
        d.add_mailbox("carol@example.net", fast_hasher("carol-password"), model.quota("500M"))
        d.add_alias("info@example.org", "alice@example.org bob@example.org")
        d.add_alias("sales@example.org", ["info@example.org"])
        d.add_alias("fwd@example.org", "someone@elsewhere.test")
        d.add_alias("@example.net", "carol@example.net")
        d.add_list("team@example.org", ["alice@example.org", "carol@example.net", "ext@elsewhere.test"])
    return store


# ------------------------------------------------------------------ values

@pytest.mark.parametrize("text,size", [("0", 0), ("", 0), ("500M", 500 << 20), ("2G", 2 << 30), ("2g", 2 << 30),
                                       ("20K", 20 << 10), ("1TiB", 1 << 40), ("10MB", 10 << 20)])
def test_quota(text, size):
    assert model.quota(text) == size


@pytest.mark.parametrize("text", ["12", "-1M", "2X", "lots", "1.5G"])
def test_bad_quota(text):
    with pytest.raises(MailboxError, match=r"^.*: (expected a size|give a unit)"):
        model.quota(text)


def test_format_quota():
    assert [model.format_quota(n) for n in (0, 20 << 10, 500 << 20, 2 << 30, 1536 << 20)] == \
        ["0", "20K", "500M", "2G", "1536M"]


@pytest.mark.parametrize("text", ["alice", "@example.org", "a..b@example.org", ".a@example.org",
                                  "a/b@example.org", "a b@example.org", "alice@localhost", "alice@exa_mple.org",
                                  "x" * 65 + "@example.org"])
def test_bad_addresses(text):
    with pytest.raises(MailboxError) as e:
        model.address(text)
    assert "\n" not in str(e.value)


def test_addresses_are_lower_case():
    assert model.address(" Alice.Smith+x@Example.ORG ") == "alice.smith+x@example.org"
    assert model.alias_key("@Example.org") == "@example.org"


def test_passwords():
    with pytest.raises(MailboxError, match="too short"):
        model.password("short")
    with pytest.raises(MailboxError, match="line breaks"):
        model.password("long enough\npassword")
    with pytest.raises(MailboxError, match="not a password hash"):
        model.password_hash("{PLAIN}secret")
    with pytest.raises(MailboxError, match="not a password hash"):
        model.password_hash("plaintext-password")


# ------------------------------------------------------------------ rules

def test_unknown_domain_message():
    d = Directory()
    with pytest.raises(MailboxError) as e:
        d.add_mailbox("alice@example.org", fast_hasher("alice-password"))
    assert str(e.value) == ("alice@example.org: unknown domain example.org "
                            "(add it first: mailsetup domain add example.org)")


def rules_directory():
    d = Directory(["example.org"])
    d.add_mailbox("alice@example.org", fast_hasher("alice-password"))
    d.add_alias("info@example.org", "alice@example.org")
    d.add_list("team@example.org", "info@example.org")
    return d


@pytest.mark.parametrize("change,message", [
    (lambda d: d.add_domain("example.org"), "example.org: this domain already exists"),
    (lambda d: d.add_mailbox("alice@example.org", fast_hasher("x" * 8)), "a mailbox with this address already"),
    (lambda d: d.add_mailbox("info@example.org", fast_hasher("x" * 8)), "an alias with this address already"),
    (lambda d: d.add_alias("info@example.org", "x@example.net"), "an alias with this address already"),
    (lambda d: d.add_alias("alice@example.org", "x@example.net"), "a mailbox has this address"),
    (lambda d: d.add_list("alice@example.org"), "a mailbox has this address"),
    (lambda d: d.add_list("team@example.org"), "a list with this address already"),
    (lambda d: d.add_alias("self@example.org", "self@example.org"), "cannot deliver to itself"),
    (lambda d: d.subscribe("team@example.org", "not an address"), "expected a mail address"),
    (lambda d: d.subscribe("team@example.org", "info@example.org"), "already a member"),
    (lambda d: d.del_domain("example.org"), r"still has 1 mailbox\(es\), 1 alias\(es\) and 1 list\(s\)"),
    (lambda d: d.del_mailbox("alice@example.org"), "still a target of info@example.org"),
    (lambda d: d.del_alias("info@example.org"), "still a target of team@example.org"),
    (lambda d: d.del_mailbox("nobody@example.org"), "no such mailbox"),
])
def test_rules_refuse_and_change_nothing(change, message):
    d = rules_directory()
    before = d.to_dict()
    with pytest.raises(MailboxError, match=message):
        change(d)
    assert d.to_dict() == before


@pytest.mark.parametrize("change,message", [
    (lambda d: d.add_alias("a@example.org", "info@example.org a@example.org"), "cannot deliver to itself"),
    (lambda d: (d.add_alias("a@example.org", "b@example.org"), d.add_alias("b@example.org", "a@example.org")),
     "alias loop: a@example.org -> b@example.org -> a@example.org"),
    (lambda d: (d.add_alias("a@example.org", "team@example.org"), d.subscribe("team@example.org", "a@example.org")),
     "alias loop: .*team@example.org"),
    (lambda d: d.add_alias("a@example.org", "ghost@example.org"), "ghost@example.org is in managed domain"),
])
def test_check_refuses(change, message):
    d = rules_directory()
    with pytest.raises(MailboxError, match=message):
        change(d)
        d.check()


def test_forced_domain_delete_drops_references():
    d = rules_directory()
    d.add_domain("example.net")
    d.add_alias("x@example.net", "info@example.org bob@elsewhere.test")
    d.del_domain("example.org", force=True)
    assert d.domains == {"example.net"}
    assert d.aliases == {"x@example.net": ["bob@elsewhere.test"]}
    d.check()


def test_sender_logins():
    d = rules_directory()
    d.add_mailbox("bob@example.org", fast_hasher("bob-password"))
    d.add_alias("sales@example.org", "info@example.org bob@example.org ext@elsewhere.test")
    d.add_alias("fwd@example.org", "ext@elsewhere.test")
    d.add_alias("@example.org", "bob@example.org")
    assert d.sender_logins() == {
        "alice@example.org": ["alice@example.org"],
        "bob@example.org": ["bob@example.org"],
        "info@example.org": ["alice@example.org"],
        "sales@example.org": ["alice@example.org", "bob@example.org"],
    }


# ------------------------------------------------------------------ the file store

def test_generated_maps_and_users(store):
    populated(store)
    assert q(store, "domains", "example.org") == "OK"
    assert q(store, "domains", "example.net") == "OK"
    assert q(store, "domains", "example.com") is None
    assert q(store, "mailboxes", "alice@example.org") == "example.org/alice/"
    assert q(store, "mailboxes", "bob@example.org") == "example.org/bob/"
    assert q(store, "mailboxes", "info@example.org") is None
    assert q(store, "aliases", "alice@example.org") == "alice@example.org"
    assert q(store, "aliases", "info@example.org") == "alice@example.org, bob@example.org"
    assert q(store, "aliases", "sales@example.org") == "info@example.org"
    assert q(store, "aliases", "fwd@example.org") == "someone@elsewhere.test"
    assert q(store, "aliases", "@example.net") == "carol@example.net"
    assert q(store, "aliases", "carol@example.net") == "carol@example.net"  # not swallowed by the catch-all
    assert q(store, "aliases", "team@example.org") == "alice@example.org, carol@example.net, ext@elsewhere.test"
    assert q(store, "senders", "alice@example.org") == "alice@example.org"
    assert q(store, "senders", "info@example.org") == "alice@example.org, bob@example.org"
    assert q(store, "senders", "sales@example.org") == "alice@example.org, bob@example.org"
    assert q(store, "senders", "team@example.org") is None
    assert q(store, "senders", "fwd@example.org") is None
    with open(store.users_path) as f:
        users = f.read().splitlines()
    assert users == [
        "alice@example.org:" + fast_hasher("alice-password") + "::::::userdb_quota_rule=*:storage=2G",
        "bob@example.org:" + fast_hasher("bob-password") + "::::::",
        "carol@example.net:" + fast_hasher("carol-password") + "::::::userdb_quota_rule=*:storage=500M",
    ]
    assert "alice-password" not in open(store.json_path).read()
    assert os.stat(store.users_path).st_mode & 0o777 == 0o640
    assert os.stat(store.json_path).st_mode & 0o777 == 0o600
    assert not [p for p in files(store) if ".new" in p or p == store.marker_path]


def test_dovecot_24_quota_field(scratch, tmp_path):
    _age(scratch)
    store = FileStore(str(tmp_path / "r"), postfix_config_dir=scratch.postfix_config_dir, dovecot_version="2.4",
                      users_group=None)
    with store.transaction() as d:
        d.add_domain("example.org")
        d.add_mailbox("alice@example.org", fast_hasher("alice-password"), model.quota("10M"))
    assert open(store.users_path).read().endswith("::::::userdb_quota_storage_size=10M\n")


def test_delete_again(store):
    populated(store)
    with store.transaction() as d:
        d.del_alias("sales@example.org")
        d.del_list("team@example.org")
        d.del_alias("@example.net")
        d.set_quota("carol@example.net", 0)
    assert q(store, "aliases", "team@example.org") is None
    assert q(store, "aliases", "@example.net") is None
    assert q(store, "senders", "sales@example.org") is None
    assert "carol@example.net:" + fast_hasher("carol-password") + "::::::\n" in open(store.users_path).read()
    with store.transaction() as d:
        d.del_domain("example.net", force=True)
    assert q(store, "domains", "example.net") is None
    assert q(store, "mailboxes", "carol@example.net") is None
    assert "carol" not in open(store.users_path).read()


def test_nothing_changed_writes_nothing(store):
    populated(store)
    before = files(store)
    assert store.commit(store.load()) == []
    with pytest.raises(MailboxError, match="already exists"):
        with store.transaction() as d:
            d.add_mailbox("alice@example.org", fast_hasher("alice-password"))  # the same change again
    assert files(store) == before


def test_only_changed_files_are_written(store):
    populated(store)
    before = files(store)
    with store.transaction() as d:
        d.add_domain("example.com")
    changed = {p for p in files(store) if files(store)[p] != before.get(p)}
    # the domains map, and the aliases map for the new domain's postmaster, abuse and root
    assert changed == {store.map_path("domains"), store.map_path("domains") + ".db",
                       store.map_path("aliases"), store.map_path("aliases") + ".db", store.json_path}


def test_every_domain_has_postmaster_abuse_and_root_unless_defined(store):
    populated(store)
    with store.transaction() as d:
        d.add_domain("example.com")
        d.add_alias("abuse@example.com", "alice@example.org")
    assert q(store, "aliases", "postmaster@example.com") == "postmaster@localhost"
    assert q(store, "aliases", "root@example.com") == "root@localhost"
    assert q(store, "aliases", "abuse@example.com") == "alice@example.org"


@pytest.mark.parametrize("change", [
    lambda d: d.add_alias("a@example.org", "ghost@example.org"),
    lambda d: (d.add_alias("a@example.org", "b@example.org"), d.add_alias("b@example.org", "a@example.org")),
    lambda d: d.add_mailbox("dave@example.com", fast_hasher("dave-password")),
])
def test_refused_commit_changes_no_file(store, change):
    populated(store)
    before = files(store)
    with pytest.raises(MailboxError):
        with store.transaction() as d:
            change(d)
    assert files(store) == before


def test_failed_postmap_leaves_the_old_set(store, tmp_path):
    populated(store)
    before = files(store)
    fake = tmp_path / "postmap-fails-2nd"
    count = tmp_path / "count"
    fake.write_text(f"#!/bin/sh\necho x >> {count}\n"
                    f"[ $(wc -l < {count}) -ge 2 ] && {{ echo 'postmap: fatal: disk full' >&2; exit 1; }}\n"
                    'exec postmap "$@"\n')
    fake.chmod(0o755)
    store.postmap = str(fake)
    with pytest.raises(MailboxError, match="disk full"):
        with store.transaction() as d:
            d.add_mailbox("dave@example.org", fast_hasher("dave-password"))
    assert files(store) == before  # no .new left behind either
    store.postmap = "postmap"
    with store.transaction() as d:
        d.add_mailbox("dave@example.org", fast_hasher("dave-password"))
    assert q(store, "mailboxes", "dave@example.org") == "example.org/dave/"


def test_interrupted_switch_is_repaired(store):
    populated(store)
    # a run killed while renaming: marker left, one map already new, directory.json old
    with open(store.map_path("domains"), "a") as f:
        f.write("stale.example\tOK\n")
    subprocess.run(["postmap", "-c", store.postfix_config_dir, store.map_spec("domains")], check=True)
    open(store.marker_path, "w").close()
    assert q(store, "domains", "stale.example") == "OK"
    store.repair()
    assert q(store, "domains", "stale.example") is None
    assert not os.path.exists(store.marker_path)


def test_concurrent_change_is_refused(store):
    populated(store)
    first, second = store.load(), store.load()
    first.add_domain("one.example")
    store.commit(first)
    second.add_domain("two.example")
    with pytest.raises(MailboxError, match="changed by another run"):
        store.commit(second)
    assert store.load().domains == {"example.org", "example.net", "one.example"}


# ------------------------------------------------------------------ CSV import

GOOD_CSV = """type,address,value,quota
# people
alias,info@example.org,alice@example.org;bob@example.org,
domain,example.org,,
mailbox,alice@example.org,alice-password,2G
mailbox,bob@example.org,{SHA512-CRYPT}$6$abc$def,
alias,@example.org,alice@example.org,
list,team@example.org,"alice@example.org bob@example.org, ext@elsewhere.test",
"""


def test_import_good(store, tmp_path):
    csv_path = tmp_path / "users.csv"
    csv_path.write_text(GOOD_CSV)
    counts, _changed = import_csv(store, str(csv_path), fast_hasher)
    assert counts == {"domain": 1, "mailbox": 2, "alias": 2, "list": 1}
    d = store.load()
    assert d.mailboxes["alice@example.org"].password_hash == fast_hasher("alice-password")
    assert d.mailboxes["alice@example.org"].quota_bytes == 2 << 30
    assert d.mailboxes["bob@example.org"].password_hash == "{SHA512-CRYPT}$6$abc$def"
    assert q(store, "aliases", "team@example.org") == "alice@example.org, bob@example.org, ext@elsewhere.test"
    assert q(store, "aliases", "@example.org") == "alice@example.org"
    assert "alice-password" not in open(store.json_path).read() + open(store.users_path).read()


@pytest.mark.parametrize("row,line,message", [
    ("mailbox,dave@example.com,dave-password,", 9, "dave@example.com: unknown domain example.com"),
    ("mailbox,dave@example.org,short,", 9, "the password is too short"),
    ("mailbox,alice@example.org,alice-password,", 9, "alice@example.org: a mailbox with this address already"),
    ("mailbox,dave@example.org,dave-password,12", 9, "12: give a unit"),
    ("alias,x@example.org,ghost@example.org,", 9, "ghost@example.org is in managed domain"),
    ("alias,info@example.org,x@elsewhere.test,", 9, "an alias with this address already exists"),
    ("user,dave@example.org,dave-password,", 9, "user: unknown type"),
    ("alias,x@example.org,,", 9, "expected at least one target"),
])
def test_import_bad_row_changes_nothing(store, tmp_path, row, line, message):
    populated(store)
    before = files(store)
    csv_path = tmp_path / "bad.csv"
    # lines 1-8: header, good rows; line 9: the bad one (then more good rows)
    csv_path.write_text("type,address,value,quota\n" + "".join(
        f"mailbox,user{i}@example.org,password{i},1G\n" for i in range(7)) + row
        + "\nmailbox,last@example.org,last-password,\n")
    with pytest.raises(CsvImportError) as e:
        import_csv(store, str(csv_path), fast_hasher)
    assert str(e.value).startswith(f"{csv_path} line {line}: ")
    assert message in str(e.value)
    assert files(store) == before


def test_import_takes_a_password_as_given_and_strips_the_other_fields(store, tmp_path):
    populated(store)
    csv_path = tmp_path / "spaces.csv"
    csv_path.write_text(" mailbox , dave@example.org ,  dave password  , 1G \n"
                        'mailbox,erin@example.org," {SHA512-CRYPT}$6$abc$def ",\n'
                        "alias, info2@example.org , dave@example.org ,\n")
    import_csv(store, str(csv_path), fast_hasher)
    d = store.load()
    assert d.mailboxes["dave@example.org"].password_hash == fast_hasher("  dave password  ")
    assert d.mailboxes["dave@example.org"].quota_bytes == 1 << 30
    assert d.mailboxes["erin@example.org"].password_hash == "{SHA512-CRYPT}$6$abc$def"
    assert q(store, "aliases", "info2@example.org") == "dave@example.org"


def test_import_error_in_a_row_over_several_lines_names_its_first_line(store, tmp_path):
    populated(store)
    before = files(store)
    csv_path = tmp_path / "multiline.csv"
    csv_path.write_text("type,address,value,quota\n"
                        "\n"
                        'list,crew@example.org,"dave@example.org\nerin@example.org",\n'
                        'alias,x@example.org,"ghost@example.org\n\nmore@elsewhere.test",\n'
                        "mailbox,dave@example.org,dave-password,\n"
                        "mailbox,erin@example.org,erin-password,\n")
    with pytest.raises(CsvImportError) as e:
        import_csv(store, str(csv_path), fast_hasher)
    assert str(e.value).startswith(f"{csv_path} line 5: ")   # the alias row is lines 5-7
    assert "ghost@example.org" in str(e.value)
    assert files(store) == before
    csv_path.write_text('mailbox,dave@example.org,"dave\npassword",12\n')
    with pytest.raises(CsvImportError, match=r"multiline.csv line 1: "):
        import_csv(store, str(csv_path), fast_hasher)


def test_import_loop_names_a_line(store, tmp_path):
    populated(store)
    before = files(store)
    csv_path = tmp_path / "loop.csv"
    csv_path.write_text("alias,a@example.org,b@example.org,\n"
                        "mailbox,dave@example.org,dave-password,\n"
                        "alias,b@example.org,a@example.org,\n")
    with pytest.raises(CsvImportError, match=r"loop.csv line 1: a@example.org: alias loop"):
        import_csv(store, str(csv_path), fast_hasher)
    assert files(store) == before
