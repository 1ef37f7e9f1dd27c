"""Outside systems the calls app talks to (Janus). No models here."""
