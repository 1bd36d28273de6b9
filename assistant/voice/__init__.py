"""Voice: wake word, speech to text, understanding, text to speech (see docs/VOICE.md).

Import the submodules directly; this package stays light because the daemon's config
loader imports ``assistant.voice.config`` even when voice is off.
"""
