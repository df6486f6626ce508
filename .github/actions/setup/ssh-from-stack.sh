#!/usr/bin/env bash
# Gives the job SSH access to the stack's VPS from the stack's own config, so CI and a laptop use
# the same key and the same pinned host key, and CI needs no SSH secret of its own:
#
#   ssh-from-stack.sh <stack>
#
# - jamjam:ssh.hostKey (and jamjam:ssh.port) -> ~/.ssh/known_hosts; the Docker provider's ssh runs
#   with StrictHostKeyChecking=yes once a host key is pinned;
# - jamjam:sshPrivateKey -> an ssh-agent, straight from `pulumi config get` through a pipe, never
#   onto disk or a command line; SSH_AUTH_SOCK goes to $GITHUB_ENV for the later steps.
#
# Needs the pulumi CLI logged in to the backend and the stack's PULUMI_CONFIG_PASSPHRASE.
set -euo pipefail

stack=${1:-}
if [[ -z $stack ]]; then
  echo "usage: ssh-from-stack.sh <stack> (for example: ssh-from-stack.sh production)" >&2
  exit 2
fi

get() {
  pulumi config get --stack "$stack" "$@"
}
lacks() {
  echo "::error title=stack config::$1 is not set for stack $stack: run" \
       "\`python -m tools.setup_stack $stack\` and commit Pulumi.$stack.yaml" >&2
  exit 1
}

address=$(get jamjam:vpsAddress 2>/dev/null) || lacks jamjam:vpsAddress
host_key=$(get --path jamjam:ssh.hostKey 2>/dev/null) || lacks jamjam:ssh.hostKey
port=$(get --path jamjam:ssh.port 2>/dev/null) || port=22

# ssh looks a non-standard port up as [host]:port.
pattern=$address
if [[ $port != 22 ]]; then
  pattern="[$address]:$port"
fi
install -d -m 0700 "$HOME/.ssh"
printf '%s %s\n' "$pattern" "$host_key" >>"$HOME/.ssh/known_hosts"
chmod 0600 "$HOME/.ssh/known_hosts"

eval "$(ssh-agent -s -a "${RUNNER_TEMP:-/tmp}/jamjam-ssh-agent-$stack.sock")" >/dev/null
# ssh-add reads the key from stdin; its "Identity added" line names no secret.
if ! get jamjam:sshPrivateKey 2>/dev/null | ssh-add - >/dev/null 2>&1; then
  echo "::error title=stack config::jamjam:sshPrivateKey of stack $stack could not be loaded" \
       "into ssh-agent (not set, wrong passphrase, or not a private key): run" \
       "\`python -m tools.setup_stack $stack\`" >&2
  exit 1
fi
echo "SSH_AUTH_SOCK=$SSH_AUTH_SOCK" >>"${GITHUB_ENV:-/dev/null}"
echo "SSH_AGENT_PID=$SSH_AGENT_PID" >>"${GITHUB_ENV:-/dev/null}"
echo "ssh: key of stack $stack in the agent; host key of $pattern pinned"
