// A read_committed reader of a whole topic for the exactly-once checks of the tests, built on
// Kafka's own Java client (the reference implementation), so that a checker is never fooled
// the way a client under test may be (issue 13: @platformatic/kafka kept records of aborted
// transactions whose abort marker came in a later fetch response).
//
//   java -cp '<kafka libs>/*' ReadCommitted.java <bootstrap> <topic> [timeout ms]
//
// Reads every partition of the topic from its beginning to its last stable offset as of the
// start of the read (endOffsets under isolation.level=read_committed), with assign(), no
// consumer group and no commits; prints each record as one JSON line (partition, offset, key,
// value, timestamp, headers; key, value and header values as UTF-8 strings or null), then one
// line per partition {"end":{"partition","lastStableOffset","highWatermark"}} (a high watermark
// above the last stable offset means a transaction was open at the time), and exits 0. Exits 1
// with the reason on stderr when the topic does not exist or the read is not done in time.
import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ReadCommitted {
  public static void main(String[] args) {
    try {
      read(args);
    } catch (Exception e) {
      fail(e.toString());
    }
  }

  private static void read(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: ReadCommitted <bootstrap> <topic> [timeout ms]");
      System.exit(2);
    }
    String bootstrap = args[0];
    String topic = args[1];
    long timeoutMs = args.length > 2 ? Long.parseLong(args[2]) : 60_000;
    long deadline = System.currentTimeMillis() + timeoutMs;

    // Records go to the real stdout; anything a library prints (log4j's default console
    // appender writes to System.out) goes to stderr instead, so stdout holds only JSON lines.
    PrintStream out =
        new PrintStream(
            new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16),
            false,
            StandardCharsets.UTF_8);
    System.setOut(System.err);

    try (KafkaConsumer<byte[], byte[]> committed = consumer(bootstrap, "read_committed");
        KafkaConsumer<byte[], byte[]> uncommitted = consumer(bootstrap, "read_uncommitted")) {
      Duration timeout = Duration.ofMillis(timeoutMs);
      List<PartitionInfo> infos = committed.partitionsFor(topic, timeout);
      if (infos == null || infos.isEmpty()) fail("topic " + topic + " does not exist");
      List<TopicPartition> partitions = new ArrayList<>();
      for (PartitionInfo info : infos) partitions.add(new TopicPartition(topic, info.partition()));
      partitions.sort(Comparator.comparingInt(TopicPartition::partition));

      committed.assign(partitions);
      committed.seekToBeginning(partitions);
      // Under read_committed these are the last stable offsets: everything before them is
      // decided (committed, aborted, or not transactional), and that is what is read.
      Map<TopicPartition, Long> stableEnds = committed.endOffsets(partitions, timeout);
      Map<TopicPartition, Long> highWatermarks = uncommitted.endOffsets(partitions, timeout);

      Set<TopicPartition> reading = new HashSet<>();
      for (TopicPartition partition : partitions) {
        if (committed.position(partition, timeout) < stableEnds.get(partition)) reading.add(partition);
        else committed.pause(List.of(partition));
      }
      while (!reading.isEmpty()) {
        if (System.currentTimeMillis() > deadline)
          fail(topic + ": not read to its last stable offsets within " + timeoutMs + " ms");
        for (ConsumerRecord<byte[], byte[]> record : committed.poll(Duration.ofMillis(200))) {
          TopicPartition partition = new TopicPartition(record.topic(), record.partition());
          // Committed after the read began: not part of what this read promises to show.
          if (record.offset() < stableEnds.get(partition)) out.println(json(record));
        }
        // The position moves past control records and aborted records too, so it reaches the
        // end even when the last offsets before it hold no record a reader sees.
        for (TopicPartition partition : List.copyOf(reading)) {
          if (committed.position(partition, timeout) >= stableEnds.get(partition)) {
            reading.remove(partition);
            committed.pause(List.of(partition));
          }
        }
      }
      for (TopicPartition partition : partitions) {
        out.println(
            "{\"end\":{\"partition\":" + partition.partition()
                + ",\"lastStableOffset\":" + stableEnds.get(partition)
                + ",\"highWatermark\":" + highWatermarks.get(partition) + "}}");
      }
    }
    out.flush();
    if (out.checkError()) fail("could not write the records to stdout");
  }

  private static KafkaConsumer<byte[], byte[]> consumer(String bootstrap, String isolation) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.CLIENT_ID_CONFIG, "weir-test-read-committed");
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "10000");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    return new KafkaConsumer<>(props);
  }

  private static String json(ConsumerRecord<byte[], byte[]> record) {
    StringBuilder line = new StringBuilder(128);
    line.append("{\"partition\":").append(record.partition());
    line.append(",\"offset\":").append(record.offset());
    line.append(",\"key\":");
    string(line, record.key());
    line.append(",\"value\":");
    string(line, record.value());
    line.append(",\"timestamp\":").append(record.timestamp());
    line.append(",\"headers\":{");
    boolean first = true;
    for (Header header : record.headers()) {
      if (!first) line.append(',');
      first = false;
      string(line, header.key().getBytes(StandardCharsets.UTF_8));
      line.append(':');
      string(line, header.value());
    }
    return line.append("}}").toString();
  }

  /** A JSON string of the UTF-8 bytes, or null. */
  private static void string(StringBuilder line, byte[] bytes) {
    if (bytes == null) {
      line.append("null");
      return;
    }
    line.append('"');
    for (char c : new String(bytes, StandardCharsets.UTF_8).toCharArray()) {
      switch (c) {
        case '"' -> line.append("\\\"");
        case '\\' -> line.append("\\\\");
        case '\n' -> line.append("\\n");
        case '\r' -> line.append("\\r");
        case '\t' -> line.append("\\t");
        default -> {
          if (c < 0x20) line.append(String.format("\\u%04x", (int) c));
          else line.append(c);
        }
      }
    }
    line.append('"');
  }

  private static void fail(String why) {
    System.err.println(why);
    System.exit(1);
  }
}
