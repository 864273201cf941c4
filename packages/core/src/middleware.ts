/** A step around handling (or publishing): do work, call `next()` once to go on, work again after. */
export type Middleware<TContext> = (ctx: TContext, next: () => Promise<void>) => Promise<void>;

/**
 * Composes middleware into one function, once, at start. Calling `next()` twice from one middleware
 * is a bug that would run the handler twice, so it throws.
 */
export function compose<TContext>(
  middleware: readonly Middleware<TContext>[],
  last: (ctx: TContext) => Promise<void>,
): (ctx: TContext) => Promise<void> {
  if (middleware.length === 0) return last;
  return (ctx) => {
    let index = -1;
    const dispatch = (i: number): Promise<void> => {
      if (i <= index) return Promise.reject(new Error('next() called more than once in one middleware'));
      index = i;
      const step = middleware[i];
      if (!step) return last(ctx);
      return step(ctx, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}
