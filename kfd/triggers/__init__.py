"""File-watch triggers: the daemon starts a turn when watched files change.

``[[triggers]]`` tables in the config name a workspace, globs, a prompt
template, a permission mode (``plan`` unless the user says otherwise), a
target session, a debounce, a cool-down and a budget. Modules:

- `kfd.triggers.manager` -- the watchers, debounce and cool-down, firing.
- `kfd.triggers.files` -- which changed files count (globs, ``.git``,
  virtualenvs, git-ignored files) and the diff a prompt shows.
- `kfd.triggers.comments` -- ``AI!`` / ``AI?`` comments (aider's convention).
- `kfd.triggers.own_edits` -- changes kfd made itself, which never fire.
"""
