"""Where the customer is (docs/gates.md, "Location"): read from the environment only; imported from ``base``."""

from __future__ import annotations

from remotebank.settings.environment import env_bool, env_list

__all__ = ["LOCATION_ALLOWED_COUNTRIES", "LOCATION_ALLOW_PRIVATE_IP", "LOCATION_REQUIRED_BUSINESSES"]

# Businesses that may not be served unless the customer shares the browser's
# location (e.g. "corporate_intent"); for the others the page still asks, a
# refusal is recorded and the customer goes on. None by default: which
# businesses need it is the bank's policy.
LOCATION_REQUIRED_BUSINESSES = tuple(env_list("REMOTEBANK_LOCATION_REQUIRED_BUSINESSES", []))
# ISO country codes the client's IP must be in to join the queue (e.g. "CN"
# for the mainland only); empty: no restriction, the country is only recorded.
LOCATION_ALLOWED_COUNTRIES = tuple(code.upper() for code in env_list("REMOTEBANK_LOCATION_ALLOWED_COUNTRIES", []))
# A private or loopback client address (development, or a proxy that is not
# configured as trusted) has no country: let it pass only if this is set.
LOCATION_ALLOW_PRIVATE_IP = env_bool("REMOTEBANK_LOCATION_ALLOW_PRIVATE_IP", True)
