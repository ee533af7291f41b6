"""A value written after an on/off switch (``--proxy-headers false``), named as such.

``serve`` and ``agent`` take no arguments, only options, so a word after a switch can only
be a value meant for it: click would say "Got unexpected extra argument (false)", which
names neither the flag nor what to write instead. README: the old ``--proxy-headers false``
is an error; ``--no-proxy-headers`` is the way.
"""

from __future__ import annotations

import click

__all__ = ["SwitchCommand"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class SwitchCommand(click.Command):
    """A command of options only, whose switches refuse a value with what to write."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        switches = {
            name: option
            for option in self.params
            if isinstance(option, click.Option) and option.is_flag and option.expose_value
            for name in (*option.opts, *option.secondary_opts)
        }
        for position, token in enumerate(args):
            if token == "--":
                break
            name, equals, value = token.partition("=")
            if name not in switches:
                continue
            if not equals:
                following = args[position + 1] if position + 1 < len(args) else None
                if following is None or following.startswith("-"):
                    continue
                value = following
            raise click.BadParameter(_advice(switches[name], name, value), param=switches[name])
        return super().parse_args(ctx, args)


def _advice(option: click.Option, written: str, value: str) -> str:
    """What to write instead of ``written value``: the switch alone, its other form, or
    nothing at all."""
    on = option.opts[0]
    off = option.secondary_opts[0] if option.secondary_opts else None
    word = value.lower()
    if word in _TRUE | _FALSE:
        wanted_on = (word in _TRUE) == (written == on)  # `--no-x false` means x on
        if off is None:  # a bare switch (`--no-store`): present or absent
            instead = f"write {on}" if wanted_on else f"leave {on} out"
        else:
            instead = f"write {on if wanted_on else off}"
        return f"a switch takes no value; for {written} {value} {instead}"
    other = f"{on} or {off}" if off is not None else f"{on} or leave it out"
    return f"a switch takes no value, got {value!r} after it; write {other}"
