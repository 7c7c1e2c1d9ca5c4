module mesh.local/pulumi-language-python

go 1.25

// toolchain/pulumi.sh adds: require github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION (versions.env)
