"""Rules: Home Assistant's automation YAML, read, checked and run.

``schema`` (typed models, with ``schema_values``, ``schema_triggers``,
``schema_conditions``, ``schema_actions``), ``templates`` (HA's template helpers in Jinja's
sandbox), ``blueprints`` (``!input`` and ``use_blueprint``), ``loader`` (a rules directory,
hot reload, saving), ``check`` (``mimo-home rules check``); the engine runs the models.
"""
