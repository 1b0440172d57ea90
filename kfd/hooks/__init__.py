"""Shell hooks (``[[hooks]]``): the user's commands on the events plugins see.

- `kfd.hooks.run` -- run one hook (confined, bounded in time) and read its answer;
- `kfd.hooks.plugin` -- `ShellHooks`, registered with the plugin host like any
  plugin: a policy for ``before_tool``, an after-tool hook for ``after_tool``,
  an event observer for the rest.
"""
