"""The LLM path of understanding (see docs/LLM.md).

Kept free of imports: the config loader imports ``assistant.llm.config`` on every command,
and that must not load the engine. Import from the modules: ``config.LlmConfig``,
``understanding.LlmUnderstanding``, ``messages.LlmRequest``/``LlmProposal``/``LlmUnavailable``,
``reasoner.LlmReasoner`` (what the daemon uses), ``models`` (model files), ``bench``.
"""
