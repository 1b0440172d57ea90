"""Permission decisions. Pure parts, then the I/O around them:

- `rules`: rule syntax and how one rule matches a command, a path or a domain;
- `defaults`: the built-in rules and the protected paths;
- `shell` (with `shell_words`, `shell_wrappers`): what a bash line runs;
- `facts`: everything a decision reads; `engine`: the decision itself;
- `commands`, `paths`: where a line's and a tool's paths really are (I/O);
- `rulebook`: the rules of every source (config files, the store);
- `gate`: gathers the facts of a call and asks the engine and the plugins.
"""
