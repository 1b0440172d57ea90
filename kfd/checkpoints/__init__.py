"""Checkpoints: every file change of a turn can be undone.

Before a turn changes files, kfd keeps what they held, outside the user's
git history, and after each call what they hold then; ``kfd undo`` (and
``/undo``, ``/rewind``, ``!undo``) puts them back, and asks about any file
changed since. Modules, lowest first:

- `kfd.checkpoints.objects` -- file states, git blobs written and read in Python,
  files read without following links;
- `kfd.checkpoints.shadow` -- the shadow repository of a project: kfd's own git
  directory whose index follows the workspace (`ShadowRepo.sync`);
- `kfd.checkpoints.plan` -- what an undo does to each file, and conflicts (pure);
- `kfd.checkpoints.diff` -- unified diffs of states (pure);
- `kfd.checkpoints.restore` -- writing a state back, never through a link;
- `kfd.checkpoints.service` -- `Checkpoints`: record around tool calls, list,
  diff, undo, prune.

The rows live in the store (`kfd.store.checkpoints`); this package imports
nothing at its top so that the store can use its pure parts.
"""
