"""Cloud Storage buckets as a local folder: ``gs://BUCKET/PATH`` -> ``ROOT/BUCKET/PATH``.

Vertex AI reads tuning datasets from Cloud Storage. The emulator has no Cloud Storage, so a
local folder stands in for every bucket (the emulator's own behaviour, no Google API):

* the root is ``Buckets(root)``, else ``$TUNELAB_GCS_ROOT``, else ``<state file>.gcs/`` next to
  the ``--state`` file, else a fresh temporary folder (removed when the emulator stops);
* a bucket is a sub-folder, an object a file below it; buckets spring into existence when the
  first object is written (real buckets must be created first -- not emulated);
* files get there with :func:`tunelab.emulator.vertex.upload` (the stand-in for
  ``gsutil cp`` / ``gcloud storage cp`` / the Cloud console upload), or by copying them into the
  folder by hand, or with the Cloud Storage JSON API's media upload
  ``POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=OBJECT`` (served by the emulator,
  so ``upload`` also works against a shared emulator in another process).

Bucket names follow Cloud Storage's rules (3-63 characters: lowercase letters, digits, ``-``,
``_`` and ``.``, starting and ending with a letter or digit); object names may contain ``/``
but no ``..`` segment (the emulator refuses anything that would leave the root).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from tunelab.emulator import errors as E
from tunelab.i18n import tr

BUCKET_PATTERN = r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]"
_GS_RE = re.compile(rf"gs://({BUCKET_PATTERN})/(.+)")
_BUCKET_RE = re.compile(BUCKET_PATTERN)


def parse_gs_uri(uri: object, field: str) -> tuple[str, str]:
    """``gs://bucket/object`` -> (bucket, object); InvalidArgument naming ``field`` otherwise."""
    if not isinstance(uri, str) or not uri:
        raise E.InvalidArgument(
            tr(
                "{field}: a Cloud Storage URI gs://BUCKET/PATH.jsonl is required",
                "{field}: нужен URI Cloud Storage вида gs://BUCKET/PATH.jsonl",
                field=field,
            )
        )
    match = _GS_RE.fullmatch(uri)
    if match is None and uri.startswith("gs://"):
        bucket = uri[5:].split("/", 1)[0]
        if not _BUCKET_RE.fullmatch(bucket):
            raise E.InvalidArgument(
                tr(
                    "{field}: {uri!r}: {bucket!r} is not a valid bucket name {rule}",
                    "{field}: {uri!r}: {bucket!r} — недопустимое имя бакета {rule}",
                    field=field,
                    uri=uri,
                    bucket=bucket,
                    rule=_bucket_rule(),
                )
            )
    if match is None:
        hint = ""
        if uri.startswith(("/", "./", "~")) or "://" not in uri:
            hint = tr(
                " (a local path? copy the file to a bucket first: {call})",
                " (локальный путь? сначала скопируйте файл в бакет: {call})",
                call="tunelab.emulator.vertex.upload(local_path, 'gs://my-bucket/train.jsonl')",
            )
        raise E.InvalidArgument(
            tr(
                "{field}: {uri!r} is not a valid Cloud Storage URI; expected gs://BUCKET/PATH{hint}",
                "{field}: {uri!r} — недопустимый URI Cloud Storage; ожидался gs://BUCKET/PATH{hint}",
                field=field,
                uri=uri,
                hint=hint,
            )
        )
    bucket, name = match.group(1), match.group(2)
    if any(part in ("", ".", "..") for part in name.split("/")) or "\\" in name:
        raise E.InvalidArgument(
            tr(
                "{field}: {uri!r}: object names must not contain empty, '.' or '..' segments",
                "{field}: {uri!r}: в имени объекта не может быть пустых сегментов, '.' или '..'",
                field=field,
                uri=uri,
            )
        )
    return bucket, name


def _bucket_rule() -> str:
    return tr(
        "(3-63 characters: lowercase letters, digits, '-', '_' and '.', starting and ending "
        "with a letter or digit)",
        "(от 3 до 63 символов: строчные латинские буквы, цифры, '-', '_' и '.', в начале и в "
        "конце — буква или цифра)",
    )


class Buckets:
    """The folder that stands in for Cloud Storage (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self._temporary = False
        if root is None:
            env = os.environ.get("TUNELAB_GCS_ROOT", "").strip()
            if env:
                root = env
            else:
                root = tempfile.mkdtemp(prefix="tunelab-gcs-")
                self._temporary = True
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @classmethod
    def for_state(cls, state: str | os.PathLike | None) -> Buckets:
        """The default folder for an emulator with ``--state FILE``: ``FILE.gcs`` beside it."""
        if os.environ.get("TUNELAB_GCS_ROOT", "").strip() or state is None:
            return cls()
        return cls(os.fspath(state) + ".gcs")

    def path(self, uri: str, field: str = "uri") -> Path:
        """The local file that holds ``uri`` (which may not exist)."""
        bucket, name = parse_gs_uri(uri, field)
        path = (self.root / bucket / name).resolve()
        if self.root not in path.parents:
            raise E.InvalidArgument(
                tr(
                    "{field}: {uri!r} points outside the emulator's buckets",
                    "{field}: {uri!r} указывает за пределы бакетов эмулятора",
                    field=field,
                    uri=uri,
                )
            )
        return path

    def read(self, uri: str, field: str) -> bytes:
        """The bytes of an object; NotFound (as Cloud Storage says it) if it does not exist."""
        path = self.path(uri, field)
        bucket = parse_gs_uri(uri, field)[0]
        if not (self.root / bucket).is_dir():
            raise E.NotFound(
                tr(
                    "{field}: bucket gs://{bucket} does not exist (emulator: buckets are folders "
                    "under {root}; upload a file with tunelab.emulator.vertex.upload to "
                    "create one)",
                    "{field}: бакета gs://{bucket} не существует (в эмуляторе бакеты — это папки "
                    "в {root}; чтобы создать бакет, загрузите файл через "
                    "tunelab.emulator.vertex.upload)",
                    field=field,
                    bucket=bucket,
                    root=self.root,
                )
            )
        if not path.is_file():
            raise E.NotFound(
                tr(
                    "{field}: {uri} does not exist: no such object in bucket gs://{bucket} "
                    "(emulator: looked for {path})",
                    "{field}: {uri} не существует: в бакете gs://{bucket} нет такого объекта "
                    "(эмулятор искал {path})",
                    field=field,
                    uri=uri,
                    bucket=bucket,
                    path=path,
                )
            )
        return path.read_bytes()

    def write(self, bucket: str, name: str, data: bytes) -> Path:
        """Store an object (the emulator's media upload and :func:`upload` end here)."""
        if not _BUCKET_RE.fullmatch(bucket):
            raise E.InvalidArgument(
                tr(
                    "bucket: {bucket!r} is not a valid bucket name {rule}",
                    "bucket: {bucket!r} — недопустимое имя бакета {rule}",
                    bucket=bucket,
                    rule=_bucket_rule(),
                )
            )
        path = self.path(f"gs://{bucket}/{name}", "name")
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".uploading")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return path

    def close(self) -> None:
        """Remove the folder if it is a temporary one this object created."""
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)
            self._temporary = False
