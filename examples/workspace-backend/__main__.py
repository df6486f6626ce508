"""workspace-backend: Cloudflare Tunnel -> cloudflared -> the work tracker API; the Twitch bot
calls the tracker on the internal network; PostgreSQL with daily dumps to R2 and a monthly
restore drill.

Composition only: the containers, route and schedules are in workspace.py, the building blocks
in the jamjam_infra library.
"""

import workspace
from jamjam_infra.site import declare

config = workspace.load()
declare(config, workspace, workspace.app(config))
