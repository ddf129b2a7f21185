"""Shared helpers for integration tests: real processes on loopback, ports chosen at run time,
readiness waited for (never slept for), everything cleaned up at exit.

Each test_*.py is a plain script run by CTest; it exits non-zero on the first failed check.
Environment: MOAT_BIN (the moat binary), MOAT_SOURCE_DIR (the repository root).
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MOAT = os.environ.get("MOAT_BIN", "moat")
SOURCE_DIR = os.environ.get("MOAT_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

_processes = []
_failures = 0
_checks = 0


def _cleanup():
    for p in _processes:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for p in _processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


atexit.register(_cleanup)


def tempdir():
    d = tempfile.mkdtemp(prefix="moat-it-")
    atexit.register(shutil.rmtree, d, True)
    return d


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (bind to 0, read it, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(port, host="127.0.0.1", timeout=20.0, process=None):
    """Waits until host:port accepts a TCP connection (or the process died, or timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)  # poll interval of a readiness check, not a wait for an effect
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


def start(args, **kwargs):
    """Starts a background process in its own process group; it is ended at exit."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    p = subprocess.Popen(args, start_new_session=True, **kwargs)
    _processes.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    if p.poll() is None:
        os.killpg(p.pid, sig)
    return p.wait(timeout=timeout)


def run(args, timeout=60, input=None):
    """Runs a command to completion; returns CompletedProcess with text stdout/stderr."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)


def moat(*args, timeout=60, input=None):
    return run([MOAT, *args], timeout=timeout, input=input)


def check(condition, what, detail=""):
    """Records one assertion; prints it; failures make the script exit non-zero at the end."""
    global _failures, _checks
    _checks += 1
    if condition:
        print(f"ok   {what}")
    else:
        _failures += 1
        print(f"FAIL {what}")
        if detail:
            for line in str(detail).rstrip().splitlines():
                print(f"     {line}")
    sys.stdout.flush()
    return condition


def check_eq(actual, expected, what):
    return check(actual == expected, what, f"expected: {expected!r}\nactual:   {actual!r}")


def done():
    """Call at the end of a test script."""
    print(f"{_checks - _failures} passed, {_failures} failed")
    sys.exit(1 if _failures or _checks == 0 else 0)


def openssl_server(cert, key, port=None, extra=(), chain=None):
    """Starts `openssl s_server` on 127.0.0.1 and waits until it accepts connections."""
    port = port or free_port()
    args = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
            "-www", "-quiet", *extra]
    if chain:
        args += ["-cert_chain", chain]
    p = start(args, stdin=subprocess.DEVNULL)
    wait_for_port(port, process=p)
    return p, port


def make_ca_and_leaf(directory, name="leaf", key="ec", dns=("localhost",), ips=("127.0.0.1",),
                     days=30, ca=None, extra_ext=""):
    """Creates (or reuses `ca`) a CA and a leaf certificate with openssl. Returns paths dict."""
    def sh(*args):
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {r.stderr}")
        return r.stdout

    paths = {}
    if ca is None:
        ca_key = os.path.join(directory, "ca.key")
        ca_crt = os.path.join(directory, "ca.crt")
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "365", "-subj", "/CN=moat test CA",
           "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        ca = {"key": ca_key, "crt": ca_crt}
    paths["ca"] = ca
    leaf_key = os.path.join(directory, f"{name}.key")
    leaf_csr = os.path.join(directory, f"{name}.csr")
    leaf_crt = os.path.join(directory, f"{name}.crt")
    if key == "ec":
        sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", leaf_key)
    elif key.startswith("rsa"):
        bits = key[3:] or "2048"
        sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", leaf_key)
    else:
        raise ValueError(key)
    sh("openssl", "req", "-new", "-key", leaf_key, "-out", leaf_csr, "-subj", f"/CN={dns[0] if dns else name}")
    ext = os.path.join(directory, f"{name}.ext")
    san = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                "authorityInfoAccess=caIssuers;URI:http://ca.example.test/ca.crt,OCSP;URI:http://ocsp.example.test\n"
                + extra_ext)
    sh("openssl", "x509", "-req", "-in", leaf_csr, "-CA", ca["crt"], "-CAkey", ca["key"],
       "-CAcreateserial", "-out", leaf_crt, "-days", str(days), "-sha256", "-extfile", ext)
    paths["key"] = leaf_key
    paths["crt"] = leaf_crt
    chain = os.path.join(directory, f"{name}.chain.pem")
    with open(chain, "w") as out:
        out.write(open(leaf_crt).read() + open(ca["crt"]).read())
    paths["chain"] = chain
    return paths
