"""The key that tokenizes PII in staging (keyed hash), from the environment in production."""

from dagster import ConfigurableResource


class PiiMasking(ConfigurableResource):
    """`key` salts the SHA-256 tokens of e-mails so they cannot be reversed by a dictionary.

    Bind it to `EnvVar("MARTS_PII_KEY")`; the local demo runs with an empty key.
    """

    key: str = ""
