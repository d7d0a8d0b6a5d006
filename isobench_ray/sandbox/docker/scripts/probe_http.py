"""The HTTP status of a GET from inside the container: argv URL TIMEOUT_S; prints the status, or "none"
when nothing answered. Run by the container's own python3 (a container without network has only its loopback)."""
import sys
import urllib.error
import urllib.request


def main() -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        print(opener.open(sys.argv[1], timeout=float(sys.argv[2])).status)
    except urllib.error.HTTPError as exc:
        print(exc.code)
    except Exception:
        print("none")


if __name__ == "__main__":
    main()
