package dashboards_test

import (
	"fmt"
	"log"

	"github.com/carpoolsla/carpoolsla/dashboards"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

func ExampleDescribe() {
	s, err := spec.Load("../deploy/sla.yaml")
	if err != nil {
		log.Fatal(err)
	}
	infos, err := dashboards.Describe(s)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range infos {
		fmt.Printf("%-20s %-28s %2d panels  %s\n", d.UID, d.Title, d.Panels, d.File)
	}
	// Output:
	// carpoolsla-overview  Carpool SLA overview         19 panels  dashboards/sla-overview.json
	// carpoolsla-red       Carpool service RED           9 panels  dashboards/service-red.json
	// carpoolsla-dr        Carpool DR and sync          13 panels  dashboards/dr-sync.json
	// carpoolsla-load      Carpool load                 10 panels  dashboards/load.json
}
