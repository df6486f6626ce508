#!/usr/bin/env python3
"""The rehearsal's stand-in for a Django project's manage.py (rehearsal/images.py): the
commands the example runs, played by the stand-in app (rehearsal/standins/app.py)."""
import sys

sys.path.insert(0, "/usr/local/lib/jamjam-standin")
import app  # noqa: E402

COMMANDS = {"runserver": ["serve", "--default-port", "8000"], "migrate": ["migrate", "django migrate"],
            "collectstatic": ["collectstatic"]}

if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    app.fail(f"manage.py: the rehearsal's stand-in runs {', '.join(COMMANDS)}, not {sys.argv[1:2]}")
# Options such as --noinput change nothing here; runserver's ADDR:PORT is kept.
rest = [a for a in sys.argv[2:] if not a.startswith("--")] if sys.argv[1] == "runserver" else []
app.main(COMMANDS[sys.argv[1]] + rest)
