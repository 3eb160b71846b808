package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/services/pricing/pricingpb"
)

// OpQuote is the quote scenario's one operation.
const OpQuote = "quote"

// Quote is the quote scenario: one carpool.pricing.v1.Pricing/Quote call
// per iteration, over one HTTP/2 connection per pricing address (calls are
// multiplexed), the addresses taken in turn. A failed call is counted as
// grpc_<code> (grpc_unavailable, grpc_deadline_exceeded, ...).
type Quote struct {
	o       Options
	conns   []*grpc.ClientConn
	clients []pricingpb.PricingClient
}

// NewQuote connects (lazily, as gRPC does) to every pricing address.
func NewQuote(o Options) (*Quote, error) {
	o.defaults()
	q := &Quote{o: o}
	for _, addr := range o.PricingAddrs {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			_ = q.Close()
			return nil, fmt.Errorf("quote: pricing address %s: %w", addr, err)
		}
		q.conns = append(q.conns, c)
		q.clients = append(q.clients, pricingpb.NewPricingClient(c))
	}
	if len(q.clients) == 0 {
		return nil, errors.New("quote: no pricing address; give --pricing-addr host:port")
	}
	return q, nil
}

// Name is "quote".
func (q *Quote) Name() string { return "quote" }

// Operations lists the one operation, "quote".
func (q *Quote) Operations() []string { return []string{OpQuote} }

// Run asks for one quote.
func (q *Quote) Run(ctx context.Context, it *loadgen.Iteration) error {
	c := q.clients[int(it.N%int64(len(q.clients)))]
	p, d := near(q.o.Center, q.o.Spread), near(q.o.Center, q.o.Spread)
	req := &pricingpb.QuoteRequest{
		RiderId: fmt.Sprintf("lg-%s-r%d", q.o.RunID, it.N),
		Pickup:  &pricingpb.LatLng{Lat: p.Lat, Lng: p.Lng},
		Dropoff: &pricingpb.LatLng{Lat: d.Lat, Lng: d.Lng},
	}
	return it.Step(ctx, OpQuote, func(ctx context.Context) error {
		resp, err := c.Quote(ctx, req)
		if err != nil {
			return grpcError(err)
		}
		if resp.GetQuoteId() == "" || resp.GetTotal() == nil {
			return loadgen.Errorf(loadgen.KindBadResponse, "quote without id or total: %v", resp)
		}
		return nil
	})
}

// grpcError gives a gRPC failure the kind grpc_<code>.
func grpcError(err error) error {
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	return &loadgen.Error{Kind: "grpc_" + snake(s.Code()), Err: err}
}

// snake turns a code's name (DeadlineExceeded) into deadline_exceeded.
func snake(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Close closes the gRPC connections.
func (q *Quote) Close() error {
	var errs []error
	for _, c := range q.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
