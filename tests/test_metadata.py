"""What the installed distribution says about itself: one version, the licence."""

from importlib import metadata

import qvae_core


def test_version_is_the_metadata_version():
    assert qvae_core.__version__ == metadata.version("qvae-core")


def test_license_is_apache_2_and_ships_its_text():
    meta = metadata.metadata("qvae-core")
    assert meta["License-Expression"] == "Apache-2.0"
    files = [f for f in metadata.files("qvae-core") if f.name == "LICENSE"]
    assert files and "Apache License" in files[0].read_text() and "Version 2.0" in files[0].read_text()
