"""RS256 id_tokens and their JWKS with the standard library only.

Intuit signs id_tokens with RS256 and publishes the key at ``jwks_uri``. The emulator makes a
2048-bit RSA key at first use (pure Python, a fraction of a second) and signs with
RSASSA-PKCS1-v1_5 over SHA-256. The key lives in memory only: id_tokens are checked once at
sign-in, so tokens from before a restart need not verify afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import threading

# DER prefix of a SHA-256 DigestInfo (RFC 8017, section 9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]
PUBLIC_EXPONENT = 65537


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _probably_prime(n: int, rounds: int = 40) -> bool:
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if all(candidate % p for p in SMALL_PRIMES) and _probably_prime(candidate):
            return candidate


class RsaKey:
    """An RSA signing key with its JWK; generated lazily and thread-safely."""

    def __init__(self, bits: int = 2048) -> None:
        self.bits = bits
        self.kid = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None

    def _numbers(self) -> tuple[int, int]:
        with self._lock:
            if self._key is None:
                while True:
                    p, q = _prime(self.bits // 2), _prime(self.bits // 2)
                    phi = (p - 1) * (q - 1)
                    if p != q and math.gcd(PUBLIC_EXPONENT, phi) == 1:
                        break
                self._key = (p * q, pow(PUBLIC_EXPONENT, -1, phi))
            return self._key

    def jwk(self) -> dict:
        """The public key as a JWK, as served at ``jwks_uri``."""
        n, _ = self._numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64url(n.to_bytes((n.bit_length() + 7) // 8, "big")),
            "e": b64url(PUBLIC_EXPONENT.to_bytes(3, "big")),
        }

    def sign_jwt(self, claims: dict) -> str:
        """A compact JWS with ``alg`` RS256 and this key's ``kid``."""
        n, d = self._numbers()
        size = (n.bit_length() + 7) // 8
        header = b64url(json.dumps({"alg": "RS256", "kid": self.kid}).encode())
        payload = b64url(json.dumps(claims).encode())
        digest = SHA256_DIGEST_INFO + hashlib.sha256(f"{header}.{payload}".encode()).digest()
        padded = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
        signature = pow(int.from_bytes(padded, "big"), d, n).to_bytes(size, "big")
        return f"{header}.{payload}.{b64url(signature)}"


_shared = RsaKey()


def shared_key() -> RsaKey:
    """One key per process: every emulator in a test run reuses it instead of making its own."""
    return _shared
