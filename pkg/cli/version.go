package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/version"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// versionTimeout bounds the question to the aggregator.
const versionTimeout = 10 * time.Second

func versionCmd(io IO, g *globals) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's version and the aggregator's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(io.Stdout, "Client Version: %s\n", version.String())
			if clientOnly {
				return nil
			}
			r := &remote{g: g}
			if err := r.check(); err != nil {
				return err
			}
			conn, err := r.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), versionTimeout)
			defer cancel()
			info, err := pb.NewQueryServiceClient(conn).GetInfo(ctx, &pb.GetInfoRequest{})
			switch {
			case status.Code(err) == codes.Unimplemented:
				fmt.Fprintf(io.Stdout, "Server Version: unknown (the aggregator at %s predates this question)\n", g.server)
				return nil
			case err != nil:
				return fmt.Errorf("server version: %w", err)
			}
			fmt.Fprintf(io.Stdout, "Server Version: %s\n", info.GetVersion())
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print the client's version only, without asking the aggregator")
	return cmd
}
