"""Shiojiri Rainbow Seeker: Cloudflare Tunnel -> cloudflared -> the Rails API (Puma); a Solid
Queue worker from the same image; PostgreSQL with PostGIS, dumped daily (kept 30 days) and
every 6 hours (kept 7) to R2; uploaded images in their own R2 bucket, kept for ever.

Composition only: the containers, route and schedules are in shiojiri.py, the building blocks
in the jamjam_infra library.
"""

import pulumi

import shiojiri
from jamjam_infra.r2_store import R2Store
from jamjam_infra.site import declare

config = shiojiri.load()
images = R2Store("images", shiojiri.image_store(config))
declare(config, shiojiri, shiojiri.app(config, images.credentials))
pulumi.export("imageBucket", images.bucket_name)
