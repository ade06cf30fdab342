import { basename } from 'node:path';

/**
 * A data file that cannot be used as given. The message is one line that names the file
 * (basename, so it stays short in logs) and, where known, the line or row, so the user can
 * open the file at the right place: `tiktok.inter line 17: userID "abc" is not a non-negative integer`.
 */
export class DataFileError extends Error {
  override readonly name = 'DataFileError';
  /** Full path of the offending file or folder. */
  readonly file: string;
  /** e.g. "line 17" or "row 42"; undefined for file-level problems. */
  readonly location: string | undefined;

  constructor(file: string, detail: string, location?: string) {
    super(`${basename(file) || file}${location ? ' ' + location : ''}: ${detail}`);
    this.file = file;
    this.location = location;
  }
}
