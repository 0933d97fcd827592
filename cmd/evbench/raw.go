package main

import (
	"context"

	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

// rawTarget is the plain table over pgx as a target.
type rawTarget struct {
	table *rawbench.Table
}

var _ target = rawTarget{}

func (r rawTarget) append(ctx context.Context, stream string, first int64, events []benchEvent) ([]int64, error) {
	rows := make([]rawbench.Event, len(events))
	for i, e := range events {
		rows[i] = rawbench.Event{ID: e.ID, Type: e.Type, Data: e.Data}
	}
	return r.table.Append(ctx, stream, first, rows)
}

func (r rawTarget) readStream(ctx context.Context, stream string, from int64, limit int) (int, error) {
	rows, err := r.table.ReadStream(ctx, stream, from, limit)
	return len(rows), err
}

func (r rawTarget) readAll(ctx context.Context, from int64, limit int) (int, int64, error) {
	rows, err := r.table.ReadAll(ctx, from, limit)
	if err != nil || len(rows) == 0 {
		return 0, from - 1, err
	}
	return len(rows), rows[len(rows)-1].GlobalPosition, nil
}
