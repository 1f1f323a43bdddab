# shellcheck shell=bash
# Helpers shared by deploy/local/stack, deploy/local/kafka, deploy/local/kafka-fetch and deploy/local/kafka-lock.
#
# They live apart from env.sh because env.sh is also sourced by interactive shells, which should not be
# polluted with these functions. The caller must have sourced env.sh first.

ADLEDGER_LOG_DIR="${ADLEDGER_HOME}/logs"
ADLEDGER_STACK_LOG="${ADLEDGER_LOG_DIR}/stack.log"

# JVM flags for short-lived CLI tools: tiered compilation stopped at C1 and the serial collector roughly
# halve the start-up time of a tool on a 2-core machine, and a tool never runs long enough to need more.
# shellcheck disable=SC2034 # Used by the scripts that source this file.
ADLEDGER_TOOL_JAVA_OPTS=(-Xms64m -Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true)

# Prints a message to stderr and appends it, time-stamped, to stack.log so that a failed CI run can be
# reconstructed afterwards from the log directory alone.
adl_say() {
  printf '%s\n' "$*" >&2
  adl_record "$*"
}

# Appends a message to stack.log only, for details that would clutter the terminal.
adl_record() {
  mkdir -p "${ADLEDGER_LOG_DIR}" 2>/dev/null || return 0
  printf '%s [%s] %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "${ADLEDGER_SCRIPT:-adledger}" "$*" \
    >>"${ADLEDGER_STACK_LOG}" 2>/dev/null || true
}

adl_warn() {
  adl_say "WARNING: $*"
}

adl_die() {
  adl_say "ERROR: $*"
  exit 1
}

# Prints the last lines of a log file under a header, so that a failure shows its cause without the user
# having to go and find the file. When the log has "===== ... starting" separators (written by the stack at
# every start), only the latest run is shown, so that an old run's shutdown is not mistaken for the cause.
adl_tail_log() {
  local file="$1" lines="${2:-30}" from
  if [[ -s "${file}" ]]; then
    from="$(grep -n '^===== ' "${file}" | tail -n 1 | cut -d: -f1 || true)"
    printf -- '----- last %s lines of %s -----\n' "${lines}" "${file}" >&2
    tail -n "+${from:-1}" "${file}" | tail -n "${lines}" >&2
    printf -- '----- end of %s -----\n' "${file}" >&2
  else
    printf 'The log %s is empty or missing.\n' "${file}" >&2
  fi
}

adl_is_root() {
  [[ "$(id -u)" -eq 0 ]]
}

# Installs Debian packages when running as root, because a fresh machine (CI, a new developer box) has
# nothing preinstalled; as a normal user it stops with the exact command to run instead of trying sudo.
ADLEDGER_APT_UPDATED=""
adl_apt_install() {
  if ! adl_is_root; then
    adl_die "missing prerequisite: Debian package(s) '$*'. Install them with: sudo apt-get install -y $*"
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    adl_die "missing prerequisite: package(s) '$*', and apt-get is not available to install them"
  fi
  mkdir -p "${ADLEDGER_LOG_DIR}"
  if [[ -z "${ADLEDGER_APT_UPDATED}" ]]; then
    adl_say "Updating the apt package lists (needed to install $*)..."
    if ! apt-get update >>"${ADLEDGER_STACK_LOG}" 2>&1; then
      adl_tail_log "${ADLEDGER_STACK_LOG}"
      adl_die "apt-get update failed (is the Debian mirror reachable?)"
    fi
    ADLEDGER_APT_UPDATED=1
  fi
  adl_say "Installing Debian package(s): $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
    >>"${ADLEDGER_STACK_LOG}" 2>&1; then
    adl_tail_log "${ADLEDGER_STACK_LOG}"
    adl_die "apt-get install $* failed"
  fi
}

# Installs the package that provides a command unless the command is already on PATH.
adl_require_cmd() {
  local cmd="$1" pkg="$2"
  command -v "${cmd}" >/dev/null 2>&1 || adl_apt_install "${pkg}"
  command -v "${cmd}" >/dev/null 2>&1 || adl_die "'${cmd}' is still missing after installing '${pkg}'"
}

# Prints the major version of a java binary. The JDK's release file is read first because launching a JVM
# just to ask its version costs a noticeable fraction of a second on every CLI call.
adl_java_major() {
  local bin="$1" home version
  home="$(dirname "$(dirname "$(readlink -f "${bin}")")")"
  if [[ -r "${home}/release" ]]; then
    version="$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "${home}/release")"
  fi
  if [[ -z "${version:-}" ]]; then
    version="$("${bin}" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
  fi
  version="${version#1.}"
  printf '%s\n' "${version%%[.+-]*}"
}

# Prints a java binary of version 17 or newer (Kafka 4.x brokers need 17), installing one if there is none.
adl_java() {
  local candidate major
  local -a candidates=()
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("${JAVA_HOME}/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  for candidate in /usr/lib/jvm/*/bin/java; do
    [[ -x "${candidate}" ]] && candidates+=("${candidate}")
  done
  for candidate in "${candidates[@]}"; do
    [[ -x "${candidate}" ]] || continue
    major="$(adl_java_major "${candidate}")"
    if [[ "${major}" =~ ^[0-9]+$ ]] && ((major >= 17)); then
      printf '%s\n' "${candidate}"
      return 0
    fi
  done
  # Debian 12 ships openjdk-17; newer releases drop it, so the distribution default is the fallback.
  if adl_is_root && apt-cache show openjdk-17-jre-headless >/dev/null 2>&1; then
    adl_apt_install openjdk-17-jre-headless
  else
    adl_apt_install default-jre-headless
  fi
  for candidate in /usr/lib/jvm/*/bin/java; do
    [[ -x "${candidate}" ]] || continue
    major="$(adl_java_major "${candidate}")"
    if [[ "${major}" =~ ^[0-9]+$ ]] && ((major >= 17)); then
      printf '%s\n' "${candidate}"
      return 0
    fi
  done
  adl_die "no Java 17 or newer found after installing one; Kafka 4.x needs Java 17+"
}

# Prints the time since the epoch in milliseconds; EPOCHREALTIME avoids forking date in polling loops.
adl_now_ms() {
  local now="${EPOCHREALTIME/[.,]/}"
  printf '%s\n' "$((now / 1000))"
}

# Formats a duration given in milliseconds as seconds with one decimal.
adl_fmt_ms() {
  local ms="$1"
  printf '%d.%d s' "$((ms / 1000))" "$(((ms % 1000) / 100))"
}

# ---------------------------------------------------------------------------------------------------------
# The pinned Kafka (deploy/kafka.lock): one version for the local stack, docker-compose.yml and deploy/k8s,
# with the SHA-256 of every jar that deploy/local/kafka-fetch puts on the classpath.
# ---------------------------------------------------------------------------------------------------------

ADLEDGER_KAFKA_LOCK="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/kafka.lock"

# Prints the pinned Kafka version.
adl_kafka_pinned_version() {
  local version
  [[ -r "${ADLEDGER_KAFKA_LOCK}" ]] || adl_die "the Kafka pin ${ADLEDGER_KAFKA_LOCK} is missing"
  version="$(awk '$1 == "version" { print $2 }' "${ADLEDGER_KAFKA_LOCK}")"
  [[ "${version}" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
    || adl_die "${ADLEDGER_KAFKA_LOCK} names no version (a line 'version X.Y.Z')"
  printf '%s\n' "${version}"
}

# Prints the pinned jars' sums in sha256sum's format ("<sha256>  <file>"), for sha256sum --check.
adl_kafka_locked_sums() {
  awk '$1 == "sha256" { print $2 "  " $3 }' "${ADLEDGER_KAFKA_LOCK}"
}

# True when a class is in one of the Kafka jars of a classpath directory. Kafka moves its tools between
# releases (ConfigCommand left kafka.admin for org.apache.kafka.tools in 4.4), so the wrapper picks the
# class that the jars at hand have. A zip archive stores each entry's name uncompressed, so a plain search
# of the archives for "<class path>.class" finds it without unpacking anything.
adl_kafka_has_class() {
  local libs="$1" class="$2"
  grep -qsF --binary-files=text "${class//.//}.class" "${libs}"/kafka*.jar
}
