"""thinkRing: Cloudflare Tunnel -> cloudflared -> /api/ to the Django backend, the rest to the
Svelte front end; PostgreSQL 15 with daily dumps to R2 and a weekly restore drill.

Composition only: thinkRing's containers, routes and schedules are in thinkring.py, the
building blocks in the jamjam_infra library.
"""

import thinkring
from jamjam_infra.site import declare

config = thinkring.load()
declare(config, thinkring, thinkring.app(config, thinkring.generate_secrets()))
