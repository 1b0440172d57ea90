"""The agent: turn loop, context building, tool execution."""
