#!/bin/sh
# Make sure the mosquitto broker binary is present; the demo and the tests start their own.
set -e
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "mosquitto not found: installing it with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
    # The Debian package enables a system broker on port 1883; the demo and tests don't use it.
    exit 0
fi
echo "The demo and the tests need the mosquitto MQTT broker. Install it with:" >&2
echo "    sudo apt-get install mosquitto" >&2
exit 1
