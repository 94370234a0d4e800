"""charmt.io.digest: the one sha256 of a file that downloads, models, checkpoints and code use."""

import hashlib

from charmt.io.digest import sha256_of


def test_sha256_of_reads_the_whole_file_in_chunks(tmp_path):
    data = bytes(range(256)) * 5000  # over a megabyte: several reads
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()
