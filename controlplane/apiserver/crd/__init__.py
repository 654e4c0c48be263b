"""CustomResourceDefinitions served by the API server (upstream's apiextensions-apiserver).

`definition`: the CRD object (defaults, strategy, validation, conditions); `naming`: accepted
names and the NamesAccepted/Established conditions; `custom`: serving entries and the schema
steps of custom resources; `codec`: conversion between served and stored versions;
`controller`: the in-process controllers that tie them to the registry.
"""
