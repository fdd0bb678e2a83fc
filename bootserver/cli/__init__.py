"""The `bootserver` command and the commands of the areas that have no folder of their own
(render previews, machines); areas with a folder keep theirs in `<area>/commands.py`."""

from bootserver.cli.main import main

__all__ = ["main"]
