"""names: the DNS name and local part checks every package shares."""

import pytest

from mailsetup.names import MAX_NAME_LENGTH, domain_problem, is_dot_atom_local


@pytest.mark.parametrize("name, min_labels", [
    ("example.org", 2), ("mail.example.org", 2), ("localhost", 1), ("xn--bcher-kva.example", 2)])
def test_good_names_have_no_problem(name, min_labels):
    assert domain_problem(name, min_labels) is None


@pytest.mark.parametrize("name, min_labels, problem", [
    ("bücher.example", 2, "non-ASCII names must be given in their punycode form (xn--...)"),
    (".".join(["a" * 63] * 4) + ".org", 2,
     f"a name is at most {MAX_NAME_LENGTH} characters long"),
    ("-bad.example", 2, '"-bad" is not a valid label (letters, digits and inner hyphens, 1-63 characters)'),
    ("example..org", 2, '"" is not a valid label (letters, digits and inner hyphens, 1-63 characters)'),
    ("localhost", 2, "the name must contain a dot"),
    ("192.0.2.1", 2, "the last label must not be all digits"),
])
def test_bad_names_say_why(name, min_labels, problem):
    assert domain_problem(name, min_labels) == problem


@pytest.mark.parametrize("local, ok", [
    ("alice", True), ("first.last", True), ("a+tag", True), ("o'brien", True),
    (".alice", False), ("al..ice", False), ("al ice", False), ('"quoted"', False), ("a,b", False), ("", False)])
def test_dot_atom_local_parts(local, ok):
    assert is_dot_atom_local(local) is ok
