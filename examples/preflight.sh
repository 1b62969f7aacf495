# Sourced by the example scripts (not an example itself): before the first request, say
# what is missing and what to do about it, instead of a silent exit or a bare curl error.
#
#   . "$(dirname "$0")/preflight.sh"
#   need curl "$CURL_HINT"        # a missing command: exit 2 with where to get it
#   server_up "$URL"              # no server at URL: exit 1 with how to start one

example="${0##*/}"
CURL_HINT="install it: apt-get install curl, dnf install curl, brew install curl (https://curl.se/download.html)"
JQ_HINT="install it: apt-get install jq, dnf install jq, brew install jq (https://jqlang.org/download/)"

# need COMMAND HINT: COMMAND is on PATH, or the script stops saying how to get it.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "$example: $1 is not installed; $2" >&2
  exit 2
}

# server_up URL [START]: an inference server answers at URL, or the script stops saying how to
# start one (START, default `npm start`) or where to point INFERENCE_URL.
server_up() {
  local url="$1" start="${2:-npm start}" code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$url/v2/health/live") || true
  case "$code" in
    200) ;;
    000 | "")
      echo "$example: no server at $url; start one with \`$start\` (it serves models/ on http://localhost:8080), or set INFERENCE_URL to where one runs" >&2
      exit 1 ;;
    *)
      echo "$example: $url answered GET /v2/health/live with HTTP $code: is it this inference server? Set INFERENCE_URL to the server's URL" >&2
      exit 1 ;;
  esac
}
