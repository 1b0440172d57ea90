"""Custom commands: Markdown prompt templates the user (or a trusted project) keeps.

- `kfd.commands.loader` -- command files: front matter and template, read safely;
- `kfd.commands.template` -- the template made into a prompt (pure);
- `kfd.commands.book` -- which commands a workspace offers, trust included.

The daemon lists them (``commands.list``) and runs one (``commands.run``) as
a user message whose prompt is made when its turn starts (`kfd.agent.commands`).
"""
