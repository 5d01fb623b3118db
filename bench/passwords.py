"""Per-hash time of SHA-512 crypt (5,000 rounds, 16-character salt), ours against references
measured in the same run.

    .venv/bin/python -m bench.passwords [--hashes 400] [--repeat 5]

Ours: `builder.passwords.sha512_crypt` (libxcrypt's crypt_rn through ctypes, with its checks)
and the pure-Python fallback (`drepper_sha512`). References: `openssl passwd -6 -stdin` hashing
every password in one process, and where this Python still has it, the stdlib `crypt` module
(libcrypt's crypt_r: the call the seeds made before). The median of `--repeat` interleaved
runs (and the best, the least disturbed by other work on the machine) are printed as ms per
hash, with ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable

from bench import run_bench
from builder.passwords import active_backend, drepper_sha512, sha512_crypt

SALT = "abcdefghABCDEFGH"
Timer = Callable[[list[str]], float]


def time_ours(passwords: list[str]) -> float:
    start = time.perf_counter()
    for password in passwords:
        sha512_crypt(password, SALT, field="bench")
    return time.perf_counter() - start


def time_python(passwords: list[str]) -> float:
    start = time.perf_counter()
    for password in passwords:
        drepper_sha512(password.encode(), SALT.encode())
    return time.perf_counter() - start


def time_openssl(passwords: list[str]) -> float:
    lines = "".join(f"{password}\n" for password in passwords).encode()
    start = time.perf_counter()
    done = subprocess.run(["openssl", "passwd", "-6", "-salt", SALT, "-stdin"], input=lines,
                          capture_output=True, check=True)
    elapsed = time.perf_counter() - start
    assert done.stdout.count(b"\n") == len(passwords)
    return elapsed


def stdlib_timer() -> Timer | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # noqa: PLC0415 - the stdlib module, gone in Python 3.13
        except ImportError:
            return None

    def time_stdlib(passwords: list[str]) -> float:
        start = time.perf_counter()
        for password in passwords:
            crypt.crypt(password, f"$6${SALT}")
        return time.perf_counter() - start
    return time_stdlib


def check_same_output(passwords: list[str]) -> None:
    """The contestants must agree before their times mean anything."""
    lines = "".join(f"{password}\n" for password in passwords[:20]).encode()
    openssl = subprocess.run(["openssl", "passwd", "-6", "-salt", SALT, "-stdin"], input=lines,
                             capture_output=True, check=True).stdout.decode().split()
    ours = [sha512_crypt(password, SALT, field="bench") for password in passwords[:20]]
    python = [drepper_sha512(password.encode(), SALT.encode()) for password in passwords[:20]]
    assert ours == openssl == python, "the implementations disagree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    passwords = [f"root-site{index:04d}-secret" for index in range(args.hashes)]
    check_same_output(passwords)
    timers: dict[str, Timer] = {"ours (" + active_backend() + ")": time_ours,
                                "ours, Python fallback": time_python,
                                "openssl passwd -6": time_openssl}
    stdlib = stdlib_timer()
    if stdlib is not None:
        timers["stdlib crypt.crypt"] = stdlib
    runs: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(args.repeat):
        for name, timer in timers.items():
            runs[name].append(timer(passwords) / len(passwords) * 1000)
    print(f"{args.hashes} hashes x {args.repeat} interleaved runs, ms per hash")
    print(f"  {'':28s} {'best':>7s} {'median':>8s}   best vs openssl")
    best = {name: min(times) for name, times in runs.items()}
    for name, times in runs.items():
        ratio = best[name] / best["openssl passwd -6"]
        print(f"  {name:28s} {best[name]:7.3f} {statistics.median(times):8.3f}   {ratio:5.2f}x")
    if stdlib is not None:
        ours = best["ours (" + active_backend() + ")"]
        print(f"  ours / stdlib crypt (best): {ours / best['stdlib crypt.crypt']:.2f}x")

if __name__ == "__main__":
    run_bench(main)
