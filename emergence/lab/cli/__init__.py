"""The lab's commands (`emergence train`, `eval`, `render`): thin parsers over `emergence.lab`."""
