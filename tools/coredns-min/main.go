// Command coredns is CoreDNS with only the plugins the local cluster's Corefile uses
// (tools/surge_cluster/addons.py COREFILE). The stock main imports every plugin, and the
// cloud DNS providers, tracing and etcd plugins pull in SDKs that tripled the cold build;
// CoreDNS documents this selection (import coremain plus the wanted plugins, set the
// directives in execution order before starting).
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives are the imported plugins in the relative order of CoreDNS's plugin.cfg,
// which is their execution order (ready and health first, kubernetes last).
var directives = []string{
	"ready",
	"health",
	"errors",
	"loadbalance",
	"cache",
	"kubernetes",
}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintln(os.Stderr, "coredns:", err)
		os.Exit(1)
	}
	coremain.Run()
}
