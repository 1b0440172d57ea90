"""Git, as kfd runs it on the host for itself: a validated repository, no code run.

- `kfd.git.repository` -- which repository a workspace belongs to, found by kfd
  and refused when its ``.git`` could have been planted or redirected;
- `kfd.git.run` -- the one way kfd runs git on the host: a shadow git
  directory without the repository's configuration, a clean environment.

Every host-side git call of kfd goes through `run_git`; commands the model
runs use git inside the sandbox instead (`kfd.sandbox`).
"""

from kfd.git.repository import Refused, Repository, find, is_marker
from kfd.git.run import GitOutput, GitUnavailable, run_git

__all__ = [
    "GitOutput",
    "GitUnavailable",
    "Refused",
    "Repository",
    "find",
    "is_marker",
    "run_git",
]
