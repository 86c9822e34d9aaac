"""kit.secrets: Fernet at rest, key rotation through the key list, and the generated key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from threadline.config import Settings
from threadline.kit.secrets import SecretBox, SecretDecryptionError, load_or_create_key_file, parse_keys, secret_box


def test_a_secret_round_trips_and_the_ciphertext_does_not_show_it() -> None:
    box = SecretBox([Fernet.generate_key()])
    token = box.encrypt("whsec_plain")
    assert b"whsec_plain" not in token and box.decrypt(token) == "whsec_plain"
    assert box.decrypt_json(box.encrypt_json({"token": "t0k", "n": [1, 2]})) == {"token": "t0k", "n": [1, 2]}


def test_keys_rotate_the_first_encrypts_every_one_decrypts() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = SecretBox([old]).encrypt("s3cret")
    rotating = SecretBox([new, old])
    assert rotating.decrypt(token) == "s3cret"
    rotated = rotating.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == "s3cret"
    with pytest.raises(SecretDecryptionError, match="none of the configured secret keys"):
        SecretBox([new]).decrypt(token)


def test_a_malformed_key_is_named_by_its_position() -> None:
    good = Fernet.generate_key().decode()
    with pytest.raises(ValueError, match="entry 2 is not a Fernet key"):
        parse_keys(f"{good}, not-a-key")
    assert len(parse_keys(f" {good} , {Fernet.generate_key().decode()} ")) == 2


def test_without_keys_a_key_file_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    token = secret_box(settings).encrypt("x")
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    first = key_file.read_bytes()
    assert load_or_create_key_file(key_file) == first.strip()  # reused, not replaced
    assert SecretBox([first.strip()]).decrypt(token) == "x"
    assert [p.name for p in key_file.parent.iterdir()] == ["secret.key"]  # no temporary file left


def test_configured_keys_win_over_the_key_file(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    settings = Settings(data_dir=tmp_path, secret_keys=SecretStr(key.decode()))
    assert SecretBox([key]).decrypt(secret_box(settings).encrypt("y")) == "y"
    assert not (tmp_path / "secret.key").exists()
    assert key.decode() not in repr(settings)
