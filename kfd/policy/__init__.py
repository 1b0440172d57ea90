"""Permission decisions: parse, facts, decision, with the knowledge of commands as data.

Pure parts (no I/O), in the order a decision flows through them:

- `shell`: what a bash line runs (tree-sitter; wrappers followed, code bash
  would evaluate from data found);
- `programs`: what programs do with their words (option tables generated from
  their own ``--help``, what options mean, wrappers, builtins: all data);
- `reading`: one command read by that knowledge (its paths, what it writes,
  runs, reads whole);
- `rules`, `command_rules`: rule syntax, and how a rule meets a path, a domain
  or a command (word for word to allow, by meaning to deny or ask);
- `defaults`: the built-in rules and the protected paths;
- `facts`: everything a decision reads; `engine` with `judge_bash`,
  `judge_tool`, `judge_paths` and `verdicts`: the decision itself.

And the I/O around them:

- `line_facts`: where a line's words really point, the trees it reads, the
  program a path runs; `paths`, `gitindex`: a tool's paths, git's tracked files;
- `read_guard`: the read rules as a predicate for tools that search trees
  (`grep`, `glob` leave out what they restrict);
- `rulebook`: the rules of every source (config files, the store);
- `gate`: gathers the facts of a call (`CallSite`) and asks the engine and
  the plugins.
"""
