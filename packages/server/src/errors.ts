import { type ErrorCode, errorInfo } from '@gatehouse/protocol';

/** An error with a stable code from the protocol table; its message is safe to show a client. */
export class GatehouseError extends Error {
  override readonly name = 'GatehouseError';
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status ?? errorInfo(code).status;
  }
}

export const isGatehouseError = (err: unknown): err is GatehouseError => err instanceof GatehouseError;
