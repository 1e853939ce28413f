"""Dynamic Memory Networks plugin, DMN+ (Xiong et al. 2016).

Loaded through the entry point ``dmn = "mannkit_dmn"``; importing it registers its classes.
"""

#: The mannkit interface version this plugin is written for.
MANNKIT_API = 1

__all__ = ["MANNKIT_API"]
