#!/usr/bin/env bash
# Installs what dlc's WebGPU and browser tests need on a Debian or Ubuntu machine without a GPU:
#  - Chromium, the distribution's package (the page test drives it through playwright-core; no
#    browser is ever downloaded). It must end up at $DLC_CHROMIUM (default /usr/bin/chromium).
#  - Mesa's CPU Vulkan driver, lavapipe (mesa-vulkan-drivers >= 23), which Dawn, the `webgpu` npm
#    package, turns into a WebGPU adapter. Dawn refuses Mesa 22's lavapipe, Debian 12's own, so on
#    bookworm it comes from bookworm-backports, added to apt's sources when apt does not read it yet
#    (on the mirror apt already uses for bookworm).
# Usage, as root: bash scripts/setup-test-machine.sh [--dry-run]   (--dry-run prints the commands)
# Idempotent: a no-op (exit 0) when both are present. Not root, or not Debian/Ubuntu: prints what to
# install and exits 1. Without these the tests still pass, skipping what needs them with a banner;
# DLC_TEST_REQUIRE=webgpu,browser (set by .ci/run) makes a missing one a failure.
set -euo pipefail

CHROMIUM=${DLC_CHROMIUM:-/usr/bin/chromium}
MESA_MIN=23
DRY_RUN=0
for arg in "$@"; do
  case $arg in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-test-machine: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'setup-test-machine: %s\n' "$*"; }
die() { printf 'setup-test-machine: %s\n' "$*" >&2; exit 1; }
# Runs a command, or only prints it with --dry-run.
act() {
  if [ "$DRY_RUN" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

# mesa-vulkan-drivers installed at version >= MESA_MIN.
mesa_ok() {
  local st
  st=$(dpkg-query -W -f='${db:Status-Status} ${Version}' mesa-vulkan-drivers 2>/dev/null) || return 1
  [ "${st%% *}" = installed ] && dpkg --compare-versions "${st#* }" ge "$MESA_MIN"
}
chromium_ok() { [ -x "$CHROMIUM" ]; }
have_dpkg() { command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; }

if have_dpkg && mesa_ok && chromium_ok; then
  say "nothing to do: $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers) and $CHROMIUM are installed"
  exit 0
fi

# What is missing, in words, for the refusals below.
missing() {
  if ! chromium_ok; then echo "  - Chromium at $CHROMIUM (Debian: apt-get install chromium; elsewhere install Chromium and run the tests with DLC_CHROMIUM=/path/to/chromium)"; fi
  if ! have_dpkg || ! mesa_ok; then echo "  - Mesa's CPU Vulkan driver, lavapipe, version >= $MESA_MIN (Debian/Ubuntu: mesa-vulkan-drivers; Debian 12 from bookworm-backports), or any working Vulkan, Metal or D3D12 GPU driver"; fi
}

os_id=''
os_like=''
codename=''
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  os_id=${ID:-}
  os_like=${ID_LIKE:-}
  codename=${VERSION_CODENAME:-}
fi
case " $os_id $os_like " in
  *' debian '* | *' ubuntu '*) ;;
  *)
    {
      echo "setup-test-machine: this script installs packages on Debian or Ubuntu only (this is '${os_id:-unknown}'). Install:"
      missing
    } >&2
    exit 1
    ;;
esac
if ! have_dpkg; then
  { echo "setup-test-machine: dpkg and apt-get are missing. Install:"; missing; } >&2
  exit 1
fi
if [ "$(id -u)" != 0 ] && [ "$DRY_RUN" = 0 ]; then
  {
    echo "setup-test-machine: run it as root (sudo bash scripts/setup-test-machine.sh) to install:"
    missing
  } >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() {
  if [ "$updated" = 0 ]; then act apt-get update -qq; updated=1; fi
}
# The version apt would install for a package, or empty.
candidate() { apt-cache policy "$@" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }'; }

# The mirror apt uses for `codename` (deb822 .sources or one-line .list), for its -backports suite.
debian_mirror() {
  local f uri=''
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk -v want="$codename" '
      /^[[:space:]]*$/ { if (ok && u != "") { print u; exit } ok = 0; u = ""; next }
      tolower($1) == "uris:" { u = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == want) ok = 1 }
      END { if (ok && u != "") print u }' "$f" | head -n 1)
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -e 's/#.*//' -e 's/\[[^]]*\]//' | awk -v want="$codename" '$1 == "deb" && $3 == want { print $2; exit }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Whether apt (after apt-get update) knows ${codename}-backports: what it actually reads, so a
# commented-out or disabled entry in the sources does not count (apt-get -t would refuse the suite).
backports_known() {
  [[ $(apt-cache policy 2>/dev/null) == *"n=${codename}-backports,"* ]]
}

add_backports() {
  local file="/etc/apt/sources.list.d/${codename}-backports.sources" mirror
  mirror=$(debian_mirror)
  say "adding ${codename}-backports ($mirror) to apt's sources: $file"
  local text="Types: deb
URIs: $mirror
Suites: ${codename}-backports
Components: main"
  if [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then text="$text
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"; fi
  if [ "$DRY_RUN" = 1 ]; then printf '+ write %s:\n%s\n' "$file" "$text"; else printf '%s\n' "$text" >"$file"; fi
  updated=0
}

# Chromium first, from the release itself; then Mesa, which on bookworm comes from backports with
# whatever of its dependencies (libdrm, libgbm, ...) it needs at backports' versions too.
if ! chromium_ok; then
  apt_update
  if [ -z "$(candidate chromium)" ] && [ "$DRY_RUN" = 1 ]; then
    say "apt knows no 'chromium' package yet (a dry run does not update its lists); the real run checks again after apt-get update"
  elif [ -z "$(candidate chromium)" ]; then
    die "apt has no 'chromium' package here (Ubuntu ships Chromium as a snap: 'snap install chromium', then run the tests with DLC_CHROMIUM=/snap/bin/chromium)"
  fi
  act apt-get install -y -qq --no-install-recommends chromium
  if [ "$DRY_RUN" = 0 ] && ! chromium_ok; then
    die "installed chromium, but there is no executable at $CHROMIUM: run the tests with DLC_CHROMIUM set to where it is ($(command -v chromium || echo 'not on PATH'))"
  fi
fi

if ! mesa_ok; then
  apt_update
  release=()
  have=$(candidate mesa-vulkan-drivers)
  if [ "$os_id" = debian ] && [ "$codename" = bookworm ] && ! { [ -n "$have" ] && dpkg --compare-versions "$have" ge "$MESA_MIN"; }; then
    # Debian 12's Mesa is 22.3; bookworm-backports carries a current one.
    backports_known || add_backports
    apt_update
    release=(-t "${codename}-backports")
  fi
  act apt-get install -y -qq --no-install-recommends "${release[@]}" mesa-vulkan-drivers
  if [ "$DRY_RUN" = 0 ] && ! mesa_ok; then
    die "installed mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo '?'), but Dawn needs >= $MESA_MIN; this release has no newer one (use a newer Debian or Ubuntu, or a GPU driver)"
  fi
fi

if [ "$DRY_RUN" = 1 ]; then
  say "dry run: nothing was installed"
else
  say "ready: $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers) and $CHROMIUM"
fi
