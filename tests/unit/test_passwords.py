"""SHA-512 crypt: both implementations against independent references (openssl, mkpasswd) on
many inputs, the limits and the checked output, the seeds' and customize's salts, and no
`crypt` module or passlib anywhere (Python 3.13 has neither)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.disk.customize_ops import crypt_password
from builder.errors import InputError, IntegrityError
from builder.passwords import (
    MAX_PASSWORD_BYTES,
    SALT_ALPHABET,
    active_backend,
    check_hash,
    drepper_sha512,
    libxcrypt_sha512,
    load_libxcrypt,
    sha512_crypt,
)
from builder.seed.passwords import derive_salt, hash_root_password
from tests.fixtures.passwords import (
    mkpasswd_sha512_crypt,
    openssl_sha512_crypt,
    verify_sha512_crypt,
)

ROOT = Path(__file__).resolve().parents[2]
# Drepper's specification, "Unix crypt using SHA-256 and SHA-512", SHA-512 test vectors
# (salts over 16 characters are cut; the last vector's 10 rounds are raised to the minimum).
SPEC_VECTORS = [
    ("saltstring", None, "Hello world!",
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdF"
     "CoEOfaS35inz1"),
    ("saltstringsaltstring", 10000, "Hello world!",
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0D"
     "p8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("toolongsaltstring", 5000, "This is just a test",
     "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxU"
     "hx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"),
    ("anotherlongsaltstring", 1400,
     "a very much longer text to encrypt.  This one even stretches over morethan one line.",
     "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmL"
     "s66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"),
    ("short", 77777, "we have a short salt string but not a short password",
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeO"
     "xFmtlcGZelFl5CxtgfiAc0"),
    ("asaltof16chars..", 123456, "a short string",
     "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycU"
     "LevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"),
    ("roundstoolow", 1000, "the minimum number is still observed",
     "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58ja"
     "TfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
]

salts = st.text(SALT_ALPHABET, min_size=8, max_size=16)  # mkpasswd wants 8 to 16
rounds = st.one_of(st.none(), st.integers(1000, 6000))


LINE_SAFE = st.characters(exclude_categories=["Cs"], exclude_characters="\x00\n\r")


def fits(limit: int) -> st.SearchStrategy[str]:
    """Any text a line-reading tool can carry (no line break, no NUL), up to `limit` bytes."""
    return st.text(LINE_SAFE, min_size=1, max_size=limit).filter(
        lambda text: len(text.encode()) <= limit)


def long_text(text: str) -> str:
    """`text` repeated past 256 bytes, then cut (whole characters) to the byte limit."""
    grown = text * (257 // len(text.encode()) + 1)
    while len(grown.encode()) > MAX_PASSWORD_BYTES:
        grown = grown[:-1]
    return grown


longer_than_openssl = st.text(LINE_SAFE, min_size=1, max_size=64).map(long_text).filter(
    lambda text: len(text.encode()) > 256)


def setting_of(salt: str, rounds: int | None) -> str:
    return f"$6${salt}" if rounds is None else f"$6$rounds={rounds}${salt}"


def libxcrypt(phrase: bytes, setting: str) -> str | None:
    crypt_rn = load_libxcrypt()
    assert crypt_rn is not None, "libxcrypt (libcrypt1/libxcrypt) is part of every test machine"
    return libxcrypt_sha512(crypt_rn, phrase, setting)


@pytest.mark.parametrize(("salt", "rounds", "password", "expected"), SPEC_VECTORS)
def test_the_specification_vectors(salt: str, rounds: int | None, password: str,
                                   expected: str) -> None:
    assert drepper_sha512(password.encode(), salt.encode(), rounds) == expected
    assert libxcrypt(password.encode(), setting_of(salt, rounds)) == expected
    assert openssl_sha512_crypt(password, salt, rounds) == expected


def test_libxcrypt_is_the_backend_here() -> None:
    assert active_backend() == "libxcrypt"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=fits(256), salt=salts, rounds=rounds)
def test_both_implementations_match_openssl(password: str, salt: str,
                                            rounds: int | None) -> None:
    reference = openssl_sha512_crypt(password, salt, rounds)
    if rounds is None:
        assert sha512_crypt(password, salt, field="f") == reference
    assert libxcrypt(password.encode(), setting_of(salt, rounds)) == reference
    assert drepper_sha512(password.encode(), salt.encode(), rounds) == reference


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=longer_than_openssl, salt=salts)
def test_long_passwords_match_mkpasswd(password: str, salt: str) -> None:
    # openssl cuts at 256 bytes: mkpasswd (libxcrypt) is the reference up to the limit, and
    # the Python implementation is independent of it.
    reference = mkpasswd_sha512_crypt(password, salt)
    assert sha512_crypt(password, salt, field="f") == reference
    assert drepper_sha512(password.encode(), salt.encode()) == reference


@settings(max_examples=150, deadline=None)
@given(phrase=st.binary(min_size=1, max_size=MAX_PASSWORD_BYTES).filter(
    lambda data: b"\x00" not in data), salt=st.text(SALT_ALPHABET, min_size=1, max_size=16))
def test_python_and_libxcrypt_agree_on_any_bytes(phrase: bytes, salt: str) -> None:
    # Line breaks, control characters and invalid UTF-8: no line-reading tool carries them.
    assert drepper_sha512(phrase, salt.encode()) == libxcrypt(phrase, f"$6${salt}")


def test_the_byte_limit_is_explicit() -> None:
    longest = "x" * MAX_PASSWORD_BYTES
    assert sha512_crypt(longest, "abcdefgh", field="f") == mkpasswd_sha512_crypt(longest,
                                                                               "abcdefgh")
    with pytest.raises(InputError) as info:
        sha512_crypt("x" * (MAX_PASSWORD_BYTES + 1), "abcdefgh", field="site dc1: root_password")
    assert info.value.message == ("site dc1: root_password: is 512 bytes long in UTF-8; "
                                  "SHA-512 crypt (libxcrypt, PAM) takes at most 511")
    with pytest.raises(InputError, match="is 513 bytes long"):  # 171 characters, 3 bytes each
        sha512_crypt("€" * 171, "abcdefgh", field="f")


def test_libxcrypt_fails_without_a_hash_past_the_limit() -> None:
    # Where the old crypt() returned "*0" (a hash no password matches), crypt_rn returns NULL.
    assert libxcrypt(b"x" * 512, "$6$abcdefgh") is None


@pytest.mark.parametrize(("password", "problem"), [
    ("", "is empty"),
    ("a\x00b", "contains a NUL character, which crypt cannot hash"),
    ("a\udc80", "is not valid Unicode text (lone surrogate)"),
])
def test_unhashable_passwords_name_the_field(password: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        sha512_crypt(password, "abcdefgh", field="site dc1: root_password")
    assert info.value.message == f"site dc1: root_password: {problem}"
    assert info.value.problems == (info.value.message,)


@pytest.mark.parametrize(("output", "reason"), [
    (None, "crypt failed"),
    ("*0", "it does not start with $6$ and this salt"),
    ("$6$othersalt$" + "a" * 86, "it does not start with $6$ and this salt"),
    ("$6$abcdefgh$" + "a" * 85, "it is 97 characters long, not 98"),
    ("$6$abcdefgh$" + "a" * 85 + "!", "its hash part has characters outside the crypt alphabet"),
])
def test_a_malformed_result_is_never_returned(output: str | None, reason: str) -> None:
    with pytest.raises(IntegrityError) as info:
        check_hash(output, "$6$abcdefgh", "site dc1: root_password")
    assert info.value.message == (f"site dc1: root_password: the SHA-512 crypt hash came out "
                                  f"malformed ({reason}); nothing was written")


def test_bad_salts_and_rounds_are_programming_errors() -> None:
    for salt, count in (("", 5000), ("a$b", 5000), ("x" * 17, 5000), ("abc", 999)):
        with pytest.raises(ValueError):
            sha512_crypt("pw", salt, field="f", rounds=count)


def test_seed_hash_is_reproducible_and_its_salt_is_not_made_from_the_password() -> None:
    first = hash_root_password("dc1", "pw")
    assert first == hash_root_password("dc1", "pw")
    assert first == f"$6${derive_salt('dc1')}${first.rsplit('$', 1)[1]}"
    assert len(first) == 3 + 16 + 1 + 86
    assert hash_root_password("dc1", "pw2").split("$")[2] == derive_salt("dc1")
    assert derive_salt("dc2") != derive_salt("dc1")
    assert verify_sha512_crypt("pw", first) and not verify_sha512_crypt("pw2", first)


def test_a_root_password_of_512_bytes_stops_the_seed() -> None:
    with pytest.raises(InputError) as info:
        hash_root_password("dc1", "p" * 512)
    assert info.value.message.startswith("site dc1: root_password: is 512 bytes long")


def test_customize_hash_follows_the_build_identity() -> None:
    key, other_key = "3f" * 32, "40" * 32  # two customize cache keys
    one = crypt_password("pw", identity=key, field="f")
    again = crypt_password("pw", identity=key, field="f")
    other = crypt_password("pw", identity=other_key, field="f")
    assert one.hash is not None and other.hash is not None
    assert one.hash == again.hash and one.hash != other.hash
    assert verify_sha512_crypt("pw", one.hash) and verify_sha512_crypt("pw", other.hash)
    with pytest.raises(InputError, match=r"^operations\.3: root_password: is empty$"):
        crypt_password("", identity="a", field="operations.3: root_password")


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_no_crypt_module_and_no_passlib_are_needed() -> None:
    # What Python 3.13 is like: importing `crypt`, `_crypt` or passlib fails.
    out = run_python("""
        import sys
        class Gone:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("crypt", "_crypt", "passlib"):
                    raise ImportError(f"no module named {name!r} (as on Python 3.13)")
        sys.meta_path.insert(0, Gone())
        from builder.seed.passwords import hash_root_password
        from builder.disk.customize_ops import crypt_password
        from builder.passwords import active_backend
        print(active_backend(), hash_root_password("dc1", "pw"))
    """)
    backend, hashed = out.split()
    assert backend == "libxcrypt" and hashed == hash_root_password("dc1", "pw")


def test_without_libxcrypt_the_python_implementation_gives_the_same_hash() -> None:
    # A machine without libxcrypt: every libcrypt fails to load.
    out = run_python("""
        import ctypes
        real = ctypes.CDLL
        def no_libcrypt(name, *args, **kwargs):
            if "crypt" in str(name):
                raise OSError(f"{name}: cannot open shared object file")
            return real(name, *args, **kwargs)
        ctypes.CDLL = no_libcrypt
        from builder.passwords import active_backend
        from builder.seed.passwords import hash_root_password
        print(active_backend(), hash_root_password("dc1", "pw"))
    """)
    backend, hashed = out.split()
    assert backend == "python" and hashed == hash_root_password("dc1", "pw")
    assert verify_sha512_crypt("pw", hashed)
