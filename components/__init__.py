"""jamjam_infra: Pulumi components for small Docker services on SSH-reachable hosts, published
through a Cloudflare Tunnel. jamjam (../jamjam_app.py) and the examples under ../examples/ are
built on it. Installed by ``requirements.txt`` (``-e .``); the source lives in ``components/``.

Every component takes a frozen dataclass of plain fields (and Outputs) and never reads stack
config: a project maps its own settings onto these Args in one module of its own.

Containers (``jamjam_infra.container``)
    ``ContainerSpec(role, name, image, host, healthcheck, entrypoint=, command=, env=,
    secret_env=, volumes=(Volume(name, target),), ports=(Port(5000, "udp"),), aliases=,
    restart="always", logs=LogRotation(), depends_on=(roles,), labels=, hardening=Hardening(),
    post_deploy=PostDeploy(((argv...),)), backup_job=)``. Plain data, validated when built
    against ``jamjam_infra.rules``: db/cache ports (5432, 3306, 6379, 27017) can't be
    published, env names that say secret (DB_PASSWD, API_KEY; not KEYCLOAK_URL) and URLs with
    a password must be in ``secret_env``, a database image with a volume must name its
    ``backup_job`` (label ``<ns>.backup``). ``spec.origin(port)`` is the URL a tunnel
    route uses (``http://<first alias>:<port>``; refuses a published port).
    ``Hardening(cap_add=(), memory_mb=512, pids_limit=512, init=True, read_only_rootfs=False,
    tmpfs={}, user=None)``: every container drops ALL capabilities, sets no-new-privileges,
    memory (= memory+swap) and pids limits. ``spec.with_overrides(memory_mb=..., ...)`` applies
    per-stack overrides. ``Healthcheck(test, interval_s=30, timeout_s=3, retries=3,
    start_period_s=5, start_interval_s=1)`` (the start interval is sent only to a host whose
    Docker takes it: Debian 13); containers are created with ``wait=True`` and
    ``wait_timeout=healthcheck.wait_timeout_s()``. ``Labels(namespace="jamjam")`` gives
    ``<ns>.stack``/``<ns>.role``/``<ns>.backup`` (host scripts filter on ``jamjam.stack``).

Rules (``jamjam_infra.rules``)
    What the library enforces and the policy pack checks, defined once: ``says_secret(name)``,
    ``carries_credentials(value)``, ``DATABASE_PORTS``, ``DATABASE_IMAGES``,
    ``RESTART_POLICIES``, ``health_deadline_s(...)``. Standard library only, and this package
    imports nothing on its own, so the pack's venv (no provider SDK) imports the rules too.

Hosts (``jamjam_infra.host``)
    ``Host(name, HostArgs(ssh=SshArgs(host, port, user, initial_user, private_key, host_key),
    stack, network, containers=[spec, ...], labels=Labels(), moved_from=None,
    debian=Debian(version=13, setting="jamjam:vpsDebianVersion")))``: first contact, bootstrap
    (refused on a host that does not run that Debian release),
    ufw firewall opening SSH plus exactly the ports its containers publish, a Docker provider
    over ssh://, one bridge network, and per spec its resources, named after the container
    (``<name>`` the docker.Container, ``<name>-image``, ``<name>-volume-<volume>``,
    ``<name>-post-deploy``, ``<name>-pids-limit``). Every spec must name this host
    (``spec.host == name``) and come after the roles it depends on. Exposes ``connection``
    (pulumi-command SSH), ``ready`` (depend on it before touching the host) and
    ``containers`` (role -> docker.Container). ``moved_from=MovedFrom(type, name)`` aliases
    the Docker resources to a former parent component (state move, no replacement).
    ``DEBIAN_RELEASES`` (12, 13) says what each release's docker.io can do; ``host.debian`` is
    one line on what the host's release means for a replaced container's gap.

Tunnel (``jamjam_infra.tunnel``)
    ``Tunnel(name, TunnelArgs(account_id, zone_id, tunnel_name, routes=[Route(name, hostname,
    origin, path=None, check=ExternalCheck(path="/", expected_codes=("2xx",)))]))``: a
    remotely managed tunnel, ingress ordered so paths precede their hostname's catch-all and
    ``http_status:404`` is last, one proxied CNAME (ttl 1) per distinct hostname, and a
    ``cloudflare.Healthcheck`` per route that has a ``check``. Exposes ``token`` (secret,
    for the connector) and ``tunnel_id``. ``cloudflared(name, image, host, tunnel.token,
    depends_on=(origin roles,))`` is the connector's ContainerSpec, hardened (read-only,
    nonroot 65532), publishing nothing.

Secrets (``jamjam_infra.secrets``)
    ``generated_secret(name, length=32, special=False)`` -> secret ``Output[str]`` from
    pulumi-random; pass the same Output to every spec that needs it.

Host jobs
    ``scheduled_job.ScheduledJob(name, ScheduledJobArgs(connection, script, schedule,
    description, environment, after))``: a script from ``components/files/`` plus a cron
    entry under flock. ``_remote.remote_file(...)`` / ``remote_script(...)``: files and
    scripts over SSH on stdin. ``operations.Operations(name, OperationsArgs(stack,
    connection, host_ready, webhook_url=None, self_heal=, resource_alerts=,
    disk_alert_percent=80, memory_alert_percent=90, image_scan=, image_scan_schedule=,
    os_updates=, os_updates_reboot=))``. ``log_archive.LogArchive``: container logs to R2.

PostgreSQL (``jamjam_infra.backup``)
    ``postgres(name, image, host, database=, user=, password=, volume=, backup_job=,
    alias="db", logs=LogRotation())``: the official image's ContainerSpec (data volume on
    PGDATA, ``pg_isready``, the five capabilities its entrypoint needs, the backup label),
    for ``Backup(name, BackupArgs(stack, database=spec, sets, store, drill, ...))``.

Stack config (``jamjam_infra.schema``, ``jamjam_infra.project_settings``)
    A project declares its keys once as rows, ``TOP_LEVEL`` (``Setting(key, parse, example,
    description, default=, secret=, operator=, type=)``, ``Section(key, fields, ...)``), next
    to the shared ones: ``operator_rows()`` (VPS, Cloudflare ids, ssh, key, webhook),
    ``images_section()`` (``images.<name>``), ``containers_section()``
    (``containers.<role>.*``), or all of them for one public hostname with
    ``site_rows(hostname_example)``. ``read(TOP_LEVEL, checks)`` returns every parsed value or
    raises one ``ConfigError`` (a line per bad key with its ``pulumi config`` fix);
    ``settle(values, specs)`` (``SiteConfig.containers``) applies the overrides and refuses
    images and roles no container has. ``python -m tools.gen_config`` writes Pulumi.yaml's
    ``config:`` block and the README reference from the rows.
"""
